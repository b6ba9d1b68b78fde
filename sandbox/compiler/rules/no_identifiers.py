"""Identifiers are never output, filtered on or grouped by; only COUNT(DISTINCT <unit>)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.policy import Role

NAME = "no_identifiers"


def check(query: exp.Select, ctx: Context) -> None:
    policy = ctx.policy
    unit = policy.privacy_unit.column if policy.privacy_unit else None
    for column in query.find_all(exp.Column):
        declared = policy.columns.get(column.name)
        if declared is None or declared.role is not Role.identifier:
            continue
        parent = column.parent
        if (
            column.name == unit
            and isinstance(parent, exp.Distinct)
            and isinstance(parent.parent, exp.Count)
            and len(parent.expressions) == 1
        ):
            continue
        if column.find_ancestor(exp.Where):
            reason = "filtering on an identifier targets single persons or enterprises"
        elif column.find_ancestor(exp.Group):
            reason = "grouping by an identifier releases one group per person or enterprise"
        elif isinstance(parent, exp.Distinct):
            reason = f"only the privacy unit ({unit}) may be counted distinctly"
        else:
            reason = "identifiers are never released"
        fix = (f"Count units with COUNT(DISTINCT {unit}); group by dimensions."
               if unit else "Group by dimensions instead.")
        ctx.reject(column, f"The identifier column {column.name!r}", reason, fix, NAME)
