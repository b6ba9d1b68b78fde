"""MIN and MAX, released as differentially private quantiles near the extremes.

The exact smallest or largest value is one person's value: no amount of noise makes it safe
to release, and its sensitivity is the whole width of the bounds. Tumult Analytics answers
MIN/MAX as quantiles at 0 and 1; we take the quantiles at EXTREME and 1 - EXTREME instead, with
the same exponential mechanism as MEDIAN (sandbox.privacy.quantile). At exactly 0 every
candidate at or below the smallest value has the best score (no value lies below it), so the
mechanism picks uniformly among them, anywhere between the lower bound and the minimum; at 0.01
the best candidate is unique and the answer lands near the low end of the data.

The interval must cover the exact MIN, not only the quantile: MIN lies between the column's lower
bound and the 1% quantile, so the interval of MIN runs from the lower bound (or below it, when
the DP metadata estimates values beyond it) to the upper end of the quantile's interval; MAX
symmetrically. Every release with MIN or MAX says that they are quantiles near the extreme.
"""

from __future__ import annotations

from sqlglot import exp

__all__ = ["EXTREME", "is_extreme", "quantile_level"]

EXTREME = 0.01  # MIN is the quantile at EXTREME, MAX at 1 - EXTREME (the "extremes" note says 1% and 99%)


def is_extreme(node: exp.Expression) -> bool:
    return isinstance(node, exp.Min | exp.Max)


def quantile_level(node: exp.Expression) -> float:
    """The quantile an aggregate releases: MEDIAN 0.5, QUANTILE_CONT(x, p) p, MIN and MAX near 0 and 1."""
    if isinstance(node, exp.Min):
        return EXTREME
    if isinstance(node, exp.Max):
        return 1 - EXTREME
    if isinstance(node, exp.Median):
        return 0.5
    return float(node.expression.this)


def extreme_interval(node: exp.Expression, interval: tuple[str | None, str | None], bounds: tuple[float, float]):
    """The interval of the quantile widened to reach the extreme it stands for: down to the lower
    bound for MIN, up to the upper bound for MAX (LEAST/GREATEST keep an end already beyond it)."""
    lo, hi = interval
    a, b = bounds
    if isinstance(node, exp.Min):
        return (None if lo is None else f"LEAST({lo}, {a!r})"), hi
    return lo, (None if hi is None else f"GREATEST({hi}, {b!r})")
