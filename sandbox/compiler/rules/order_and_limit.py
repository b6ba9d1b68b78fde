"""ORDER BY and LIMIT/OFFSET act on the released table: keys, output names, selected aggregates."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.rules.having_on_released import _check_columns
from sandbox.compiler.shape import same
from sandbox.compiler.vocabulary import is_aggregate

NAME = "order_and_limit"


def check(query: exp.Select, ctx: Context) -> None:
    order = query.args.get("order")
    if order is not None:
        selected = [n for item in query.expressions for n in item.walk() if is_aggregate(n)]
        for node in order.find_all(exp.Expression):
            if is_aggregate(node) and not any(same(node, s) for s in selected):
                ctx.reject(
                    node,
                    f"ORDER BY {node.sql('duckdb')[:40]}",
                    "ordering may only use released values",
                    "Add the aggregate to SELECT.",
                    NAME,
                )
        _check_columns(order, query, ctx)
    for key in ("limit", "offset"):
        clause = query.args.get(key)
        if clause is None:
            continue
        value = clause.expression if clause.expression is not None else clause.this
        if not (isinstance(value, exp.Literal) and value.is_int and 0 <= int(value.this) < 2**63):
            ctx.reject(
                clause,
                f"{key.upper()} {value.sql('duckdb') if value else ''}",
                "it must be a non-negative integer constant",
                f"Write e.g. {key.upper()} 10.",
                NAME,
            )
