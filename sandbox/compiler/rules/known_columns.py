"""Every column exists in exactly one relation in scope and is queryable (not hidden)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context, suggest
from sandbox.compiler.scope import walk_outer

NAME = "known_columns"


def check(query: exp.Select, ctx: Context) -> None:
    scope = ctx.scope
    outputs = {item.alias.lower() for item in query.expressions if item.alias}
    for column in [n for n in walk_outer(query) if isinstance(n, exp.Column)]:
        if not column.table and column.name in outputs and column.find_ancestor(exp.Order, exp.Having):
            continue  # an output alias, resolved after noise
        if scope.resolve(column) is not None:
            continue
        name = column.name
        holders = scope.candidates(name)
        if len(holders) > 1 and not column.table:
            ctx.reject(
                column,
                f"The column {name!r}",
                f"it exists in {', '.join(r.alias for r in holders)}",
                f"Qualify it, e.g. {holders[0].alias}.{name}.",
                NAME,
            )
        relation = scope.by_alias(column.table) if column.table else scope.base
        policy = relation.dataset.policy
        if name in policy.columns and name not in relation.columns:
            ctx.reject(
                column,
                f"The column {name!r}",
                "it is hidden by the dataset's policy",
                "Remove it; hidden columns cannot be queried in any way.",
                NAME,
            )
        visible = sorted({c for r in scope.relations for c in r.columns})
        where = relation.alias if len(scope.relations) > 1 else repr(policy.name)
        ctx.reject(
            column,
            f"The column {name!r}",
            f"{'relation ' if len(scope.relations) > 1 else 'dataset '}{where} has no such column",
            f"{suggest(name, visible)}Columns: {', '.join(visible)}.",
            NAME,
        )
