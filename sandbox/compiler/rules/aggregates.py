"""Aggregates have the shapes we can bound: COUNT(*), COUNT(x), COUNT(DISTINCT col) (the unit, or
any other column: one unit adds at most its rows' values), and
SUM/AVG/VAR/STDDEV/MEDIAN/QUANTILE_CONT/MIN/MAX of a column with public bounds or of a row-level
numeric expression whose bounds follow from them (bounds.py: CASE, arithmetic, COALESCE,
LEAST/GREATEST, casts; the analyst's LEAST(GREATEST(x, lo), hi) clamps anything), and
CORR/COVAR_*/REGR_* of two such values (products.py)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler import bounds
from sandbox.compiler.context import Context
from sandbox.compiler.scope import walk_outer
from sandbox.compiler.types import BIGINT, DOUBLE, NULL
from sandbox.compiler.vocabulary import AGGREGATES, is_aggregate

NAME = "aggregates"
_QUANTILES = (exp.PercentileCont, exp.Quantile)
_PAIRED = (exp.Corr, exp.CovarSamp, exp.CovarPop, exp.RegrSlope, exp.RegrIntercept, exp.RegrCount)


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
                if len(targets) == 1 and isinstance(_bare(targets[0]), exp.Column):
                    continue  # the unit (units counted), or distinct values a unit adds at most m of
                ctx.reject(
                    node,
                    f"The aggregate {label}",
                    "COUNT(DISTINCT ...) takes one column: one unit's rows bound how many values it adds",
                    f"Count one column's distinct values, e.g. COUNT(DISTINCT {unit}), or GROUP BY the expression "
                    "and COUNT(*).",
                    NAME,
                )
            continue  # COUNT(x) counts the rows where x is not NULL: at most max_rows per unit
        if isinstance(inner, exp.Distinct):
            ctx.reject(
                node, f"DISTINCT in {label}", "only COUNT(DISTINCT col) is supported", "Remove DISTINCT.", NAME
            )
        _bounded_value(node, inner, label, ctx)
        if isinstance(node, _PAIRED):  # CORR(y, x): x is bounded too
            _bounded_value(node, node.expression, label, ctx)
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


def _bounded_value(node: exp.Expression, inner: exp.Expression, label: str, ctx: Context) -> None:
    """The aggregated value is a number with public bounds: a column's policy bounds, or bounds
    derived from the expression (its value is clamped to them in the generated SQL)."""
    typed = ctx.bound.typed(inner)
    text = inner.sql("duckdb")
    if typed.type == NULL:
        _always_null(node, label, ctx)
    if typed.type not in (BIGINT, DOUBLE):
        fix = (
            f"Count the rows where it holds: SUM(CASE WHEN {text[:40]} THEN 1 ELSE 0 END) or COUNT(*) FILTER "
            f"(WHERE {text[:40]})."
            if typed.type.name == "BOOLEAN"
            else "Aggregate a numeric column or expression; COUNT it or GROUP BY it instead."
        )
        ctx.reject(node, f"The aggregate {label}", f"it needs a number, and {text[:40]} is {typed.type}", fix, NAME)
    column = bounds.plain_column(inner)
    if column is not None:
        policy_column = ctx.bound.output(column).column
        if policy_column.aggregable:
            return
        if policy_column.bounds is None:
            ctx.reject(
                node,
                f"The aggregate {label}",
                f"column {column.name!r} has no public bounds to clamp its values",
                f"COUNT it or GROUP BY it, or clamp it yourself to the range you expect: "
                f"{node.sql_name()}(LEAST(GREATEST({column.name}, <low>), <high>)).",
                NAME,
            )
    found = bounds.derive(inner, ctx.bound)
    if found.empty:
        _always_null(node, label, ctx)
    if not found.finite:
        ctx.reject(
            node,
            f"The aggregate {label}",
            f"its values have no public bounds: {found.why or 'they could exceed ±1e100'}",
            f"Clamp it to the range you expect: {node.sql_name()}(LEAST(GREATEST({text[:40]}, <low>), "
            "<high>)); the bounds you write decide the noise.",
            NAME,
        )


def _always_null(node: exp.Expression, label: str, ctx: Context) -> None:
    ctx.reject(
        node,
        f"The aggregate {label}",
        "its value is always NULL",
        "Aggregate a value that is not NULL on some rows, e.g. CASE WHEN <condition> THEN 1 ELSE 0 END.",
        NAME,
    )


def _bare(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _number(node: exp.Expression | None) -> float | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None
