"""Identifiers are never output, filtered on or grouped by: only COUNT(DISTINCT <unit>), and
units in the ON conditions that fuse relations (validated by from_clause)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.scope import walk_outer
from sandbox.policy import Role

NAME = "no_identifiers"


def check(query: exp.Select, ctx: Context) -> None:
    for column in [n for n in walk_outer(query) if isinstance(n, exp.Column)]:
        resolved = ctx.resolve(column)
        if resolved is None or resolved[1].role is not Role.identifier or column.find_ancestor(exp.Join):
            continue
        relation, _ = resolved
        parent = column.parent
        if (
            relation.private
            and column.name == relation.unit
            and isinstance(parent, exp.Distinct)
            and isinstance(parent.parent, exp.Count)
            and len(parent.expressions) == 1
        ):
            continue
        unit = ctx.scope.unit_relation.unit
        if column.find_ancestor(exp.Where):
            reason = "filtering on an identifier targets single persons or enterprises"
        elif column.find_ancestor(exp.Group):
            reason = "grouping by an identifier releases one group per person or enterprise"
        elif isinstance(parent, exp.Distinct):
            reason = f"only the privacy unit ({unit}) may be counted distinctly"
        else:
            reason = "identifiers are never released"
        ctx.reject(
            column,
            f"The identifier column {column.name!r}",
            reason,
            f"Count units with COUNT(DISTINCT {unit}); group by dimensions.",
            NAME,
        )
