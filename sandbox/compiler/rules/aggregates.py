"""Aggregates have the shapes we can bound: COUNT(*), COUNT(col), COUNT(DISTINCT unit), and
SUM/AVG/VAR/STDDEV/MEDIAN/QUANTILE_CONT of a column with public bounds."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.scope import walk_outer
from sandbox.compiler.vocabulary import AGGREGATES, is_aggregate

NAME = "aggregates"
_QUANTILES = (exp.PercentileCont, exp.Quantile)


def check(query: exp.Select, ctx: Context) -> None:
    unit = ctx.scope.unit_relation.unit
    for node in [n for n in walk_outer(query) if isinstance(n, AGGREGATES)]:
        label = node.sql("duckdb")[:60]
        inner = node.this
        if any(is_aggregate(n) for n in inner.walk() if n is not node) if inner is not None else False:
            ctx.reject(
                node,
                f"The nested aggregate {label}",
                "aggregates cannot contain aggregates",
                "Aggregate a column directly and do arithmetic on the results.",
                NAME,
            )
        if isinstance(node, exp.Count):
            if isinstance(inner, exp.Star):
                continue
            if isinstance(inner, exp.Distinct):
                targets = inner.expressions
                if len(targets) == 1 and ctx.bound.is_unit(targets[0]):
                    continue
                ctx.reject(
                    node,
                    f"The aggregate {label}",
                    "only COUNT(DISTINCT <unit>) is supported: distinct values of other columns are exact",
                    f"Count units with COUNT(DISTINCT {unit}), or GROUP BY the column and COUNT(*).",
                    NAME,
                )
            if isinstance(inner, exp.Column):
                continue
            ctx.reject(
                node,
                f"The aggregate {label}",
                "COUNT takes *, a column, or DISTINCT <unit>",
                "Count a column, or move the condition into WHERE.",
                NAME,
            )
        if isinstance(inner, exp.Distinct):
            ctx.reject(
                node, f"DISTINCT in {label}", "only COUNT(DISTINCT <unit>) is supported", "Remove DISTINCT.", NAME
            )
        if not isinstance(inner, exp.Column):
            ctx.reject(
                node,
                f"The aggregate {label}",
                "aggregates take a plain column so its public bounds apply",
                "Aggregate the column and do arithmetic on the result, e.g. SUM(x) * 2 instead of SUM(x * 2).",
                NAME,
            )
        column = ctx.bound.output(inner).column
        if not column.aggregable:
            ctx.reject(
                node,
                f"The aggregate {label}",
                f"column {inner.name!r} has no public bounds to clamp its values",
                "COUNT it or GROUP BY it; only columns with `bounds` in the policy can be summed, averaged or ranked.",
                NAME,
            )
        if isinstance(node, _QUANTILES):
            level = node.expression
            value = _number(level)
            if value is None or not 0 < value < 1:
                ctx.reject(
                    level or node,
                    f"The quantile level in {label}",
                    "it must be a numeric constant strictly between 0 and 1",
                    "Write e.g. QUANTILE_CONT(col, 0.9); use MEDIAN(col) for 0.5.",
                    NAME,
                )


def _number(node: exp.Expression | None) -> float | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None
