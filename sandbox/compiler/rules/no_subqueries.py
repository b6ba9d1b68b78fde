"""No CTEs and no subqueries except a per-unit pre-aggregation in FROM: a nested SELECT could
aggregate private data inside a filter."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.scope import walk_outer

NAME = "no_subqueries"


def check(query: exp.Expression, ctx: Context) -> None:
    if query.args.get("with_") or query.args.get("with"):
        node = query.args.get("with_") or query.args.get("with")
        ctx.reject(
            node,
            "A WITH clause (CTE)",
            "subqueries and CTEs are not supported",
            "Write a single SELECT; per-unit totals go in FROM: (SELECT unit, SUM(x) AS total ... GROUP BY unit) AS s.",
            NAME,
        )
    for node in walk_outer(query):
        if node is not query and isinstance(node, exp.Select | exp.Subquery | exp.Lateral | exp.Unnest):
            ctx.reject(
                node,
                "A subquery",
                "a nested SELECT could aggregate private data inside a filter or expose rows",
                "Filter with row-level conditions in WHERE instead.",
                NAME,
            )
