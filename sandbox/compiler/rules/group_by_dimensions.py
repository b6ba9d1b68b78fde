"""GROUP BY dimension columns, or deterministic expressions of them (buckets, CASE, date parts),
and any non-identifier column of a public reference table."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.policy import Role

NAME = "group_by_dimensions"
MAX_KEYS = 4


def check(query: exp.Select, ctx: Context) -> None:
    group = query.args.get("group")
    if group is None:
        return
    if group.args.get("rollup") or group.args.get("cube") or group.args.get("grouping_sets"):
        ctx.reject(
            group, "ROLLUP/CUBE/GROUPING SETS", "they release overlapping groups", "Run one query per grouping.", NAME
        )
    if len(group.expressions) > MAX_KEYS:
        ctx.reject(
            group.expressions[MAX_KEYS],
            f"{len(group.expressions)} GROUP BY keys",
            f"at most {MAX_KEYS} keys are allowed",
            "Group by fewer dimensions.",
            NAME,
        )
    for key in group.expressions:
        for column in key.find_all(exp.Column):
            relation, _ = ctx.bound.ref(column)
            declared = ctx.bound.output(column).column
            if relation.kind == "public" and declared.role is Role.measure:
                continue  # every column of a public table is public; its groups are the table's rows (keys.py)
            if declared.role is not Role.dimension:
                ctx.reject(
                    column,
                    f"GROUP BY on the {declared.role.value} {column.name!r}",
                    "only dimensions may define groups",
                    "Group by a dimension; aggregate measures with SUM/AVG/MEDIAN, or "
                    "ask the data owner to declare it a dimension.",
                    NAME,
                )
