"""Every output is an aggregate, arithmetic over aggregates, or a GROUP BY key: never a row. A
query of keys alone (`SELECT educ FROM t GROUP BY educ`) releases which groups exist: private
keys through the threshold selection, public keys as the policy declares them (planner.py)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.shape import matches_key
from sandbox.compiler.vocabulary import is_aggregate

NAME = "no_row_level_output"


def covered(node: exp.Expression, keys: list[exp.Expression]) -> exp.Column | None:
    """The first column reference not inside an aggregate or a group key, if any."""
    if is_aggregate(node) or matches_key(node, keys) is not None:
        return None
    if isinstance(node, exp.Column):
        return node
    for child in node.iter_expressions():
        bad = covered(child, keys)
        if bad is not None:
            return bad
    return None


def check(query: exp.Select, ctx: Context) -> None:
    if not ctx.group_keys and not any(is_aggregate(n) for item in query.expressions for n in item.walk()):
        ctx.reject(
            query.expressions[0],
            "A query without aggregates",
            "it would output rows",
            "Select aggregates such as COUNT(*) or AVG(col), grouped by dimensions.",
            NAME,
        )
    for item in query.expressions:
        bad = covered(item.unalias(), ctx.group_keys)
        if bad is not None:
            ref = ctx.bound.ref(bad)
            public = ref is not None and ref[0].kind == "public"
            fix = (
                f"Add {bad.sql('duckdb')} to GROUP BY: a public table's columns are keys (one group per row "
                "of the table), and a key can be used in arithmetic, e.g. COUNT(*) * 1000.0 / d.population."
                if public
                else f"Add it to GROUP BY (if it is a dimension) or aggregate it, e.g. AVG({bad.name})."
            )
            ctx.reject(bad, f"The non-aggregated column {bad.name!r}", "it would output row values", fix, NAME)
