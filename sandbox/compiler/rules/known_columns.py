"""Every column exists in the dataset's policy and is queryable; qualifiers name the dataset."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context, suggest
from sandbox.policy import Role

NAME = "known_columns"


def check(query: exp.Select, ctx: Context) -> None:
    policy = ctx.policy
    outputs = {item.alias.lower() for item in query.expressions if item.alias}
    allowed_qualifiers = {ctx.dataset.name, ctx.alias} - {None}
    for column in query.find_all(exp.Column):
        if column.table and column.table not in allowed_qualifiers:
            ctx.reject(column, f"The qualifier {column.table!r}", "it does not name the dataset in FROM",
                       f"Write {column.name} or {(ctx.alias or ctx.dataset.name)}.{column.name}.", NAME)
        name = column.name
        if name in outputs and not column.table and column.find_ancestor(exp.Order, exp.Having):
            continue  # an output alias, resolved after noise
        declared = policy.columns.get(name)
        if declared is None:
            visible = list(policy.queryable())
            ctx.reject(column, f"The column {name!r}", f"dataset {policy.name!r} has no such column",
                       f"{suggest(name, visible)}Columns: {', '.join(visible)}.", NAME)
        if declared.role is Role.hidden:
            ctx.reject(column, f"The column {name!r}", "it is hidden by the dataset's policy",
                       "Remove it; hidden columns cannot be queried in any way.", NAME)
