"""HAVING filters *released* (noisy) values, never exact ones: it may only use aggregates that
are also in the SELECT list, output names and group keys. It is applied after the noise."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.shape import same
from sandbox.compiler.vocabulary import AGGREGATES, is_aggregate

NAME = "having_on_released"


def check(query: exp.Select, ctx: Context) -> None:
    having = query.args.get("having")
    if having is None:
        return
    selected = [n for item in query.expressions for n in item.walk() if is_aggregate(n)]
    for node in having.find_all(exp.Expression):
        if is_aggregate(node) and not any(same(node, s) for s in selected):
            ctx.reject(
                node,
                f"HAVING on {node.sql('duckdb')[:40]}",
                "HAVING may only filter values that are released (noisy), and this aggregate is not in the SELECT list",
                "Add the aggregate to SELECT (or filter on its "
                "output name); the filter then applies to the noisy value.",
                NAME,
            )
    _check_columns(having, query, ctx)


def _check_columns(clause: exp.Expression, query: exp.Select, ctx: Context) -> None:
    from sandbox.compiler.rules.no_row_level_output import covered

    outputs = {item.alias.lower() for item in query.expressions if item.alias}
    for column in list(clause.find_all(exp.Column)):
        if column.name in outputs and not column.table and ctx.bound.ref(column) is None:
            continue  # an output name (bind.py binds a grouped column's name in HAVING to the column)
        bad = covered(column, ctx.group_keys)
        if bad is not None and not bad.find_ancestor(*AGGREGATES):
            ctx.reject(
                bad,
                f"The column {bad.name!r} in {clause.key.upper()}",
                "only group keys, output names and released aggregates can be used here",
                "Refer to a GROUP BY key or an output name.",
                NAME,
            )

