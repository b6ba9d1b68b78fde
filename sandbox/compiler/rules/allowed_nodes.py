"""Every node of the query is in the allowlist of pure, bounded-cost SQL (vocabulary.py)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.scope import walk_outer
from sandbox.compiler.vocabulary import (
    AGGREGATES,
    FORBIDDEN_AGGREGATES,
    SAFE_ANONYMOUS,
    SCALAR_NODES,
    STRUCTURAL_NODES,
)

NAME = "allowed_nodes"
_ALLOWED = STRUCTURAL_NODES + SCALAR_NODES + AGGREGATES


def _expressions(query: exp.Select):
    """Every node of the outer query except the relations in FROM and JOIN, which from_clause
    judges (a table function there is refused as one)."""
    skip = set()
    if query.args.get("from_") is not None:
        skip.add(id(query.args["from_"]))
    for join in query.args.get("joins") or []:
        skip.add(id(join.this))
    for node in walk_outer(query):
        if any(id(a) in skip for a in _lineage(node)):
            continue
        yield node


def _lineage(node: exp.Expression):
    while node is not None:
        yield node
        node = node.parent


def check(query: exp.Select, ctx: Context) -> None:
    for node in _expressions(query):
        if isinstance(node, exp.Window):
            ctx.reject(
                node,
                "A window function (OVER ...)",
                "window functions can expose single rows",
                "Use GROUP BY with aggregates instead.",
                NAME,
            )
        if isinstance(node, exp.Filter):
            ctx.reject(
                node,
                "An aggregate FILTER clause",
                "it is outside the supported subset",
                "Move the condition into WHERE, or GROUP BY it.",
                NAME,
            )
        if type(node) in FORBIDDEN_AGGREGATES:
            reason, fix = FORBIDDEN_AGGREGATES[type(node)]
            ctx.reject(node, f"The aggregate {node.sql('duckdb')[:40]}", reason, fix, NAME)
        if isinstance(node, exp.Anonymous):
            if node.name.lower() in SAFE_ANONYMOUS:
                continue
            ctx.reject(
                node,
                f"The function {node.name.upper()}()",
                "it is not in the sandbox's list of pure scalar functions",
                "Use arithmetic, CASE, FLOOR/ROUND, string and date-part functions; see the README's 'Accepted SQL'.",
                NAME,
            )
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            ctx.reject(
                node,
                "SELECT *",
                "it would output rows",
                "Select aggregates such as COUNT(*), SUM(col) or AVG(col), grouped by dimensions.",
                NAME,
            )
        if not isinstance(node, _ALLOWED):
            label = node.key.upper() if node.key else type(node).__name__
            ctx.reject(
                node,
                f"The construct {label} ({node.sql('duckdb')[:40]})",
                "it is not in the sandbox's allowlist of pure, bounded SQL",
                "Use arithmetic, comparisons, CASE, FLOOR/ROUND and date parts with "
                "COUNT/SUM/AVG/VAR/STDDEV/MEDIAN/QUANTILE_CONT.",
                NAME,
            )
