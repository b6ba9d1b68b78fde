"""No CTEs or subqueries: a nested SELECT could aggregate private data inside a filter."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context

NAME = "no_subqueries"


def check(query: exp.Expression, ctx: Context) -> None:
    if query.args.get("with_") or query.args.get("with"):
        node = query.args.get("with_") or query.args.get("with")
        ctx.reject(node, "A WITH clause (CTE)", "subqueries and CTEs are not supported",
                   "Write a single SELECT over one dataset; combine released results afterwards.", NAME)
    for node in query.find_all(exp.Select, exp.Subquery, exp.Lateral, exp.Unnest):
        if node is query:
            continue
        ctx.reject(node, "A subquery", "a nested SELECT could aggregate private data inside a filter "
                   "or expose rows", "Filter with row-level conditions in WHERE instead.", NAME)
