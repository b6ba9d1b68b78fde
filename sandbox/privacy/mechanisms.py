"""Discrete Laplace noise for integer aggregates, drawn by OpenDP.

Why discrete: textbook floating-point Laplace noise leaks the true value through the pattern
of representable doubles (Mironov 2012). The compiler quantizes every sum onto an integer
grid, so we add OpenDP's exact integer Laplace noise (sampled with exact arithmetic) and never
touch floating point noise. Our code only chooses the scale; OpenDP samples and its privacy
map is the authority on what the scale buys.

The helpers at the bottom (parameter checks, smallest passing scale) are shared by
``quantile`` and ``threshold``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

dp.enable_features("contrib")

__all__ = ["discrete_laplace", "laplace_scale"]

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
_SPACE = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")


def laplace_scale(sensitivity: int, epsilon: float) -> float:
    """Smallest scale whose OpenDP privacy map sends ``sensitivity`` to at most ``epsilon``.

    Nominally ``sensitivity / epsilon``; OpenDP rounds its map conservatively, so the float
    scale is nudged by a few ulps until ``map(sensitivity) <= epsilon`` holds exactly.
    """
    sensitivity = check_sensitivity(sensitivity, "sensitivity")
    return _laplace(sensitivity, check_epsilon(epsilon))[1]


def discrete_laplace(
    values: Sequence[int], *, sensitivity: int, epsilon: float
) -> tuple[list[int], float]:
    """Add discrete Laplace noise to every value; return the noisy values and the scale.

    ``sensitivity`` is the L1 sensitivity of the *whole* vector (all groups of one
    aggregate), so one epsilon covers the vector.
    """
    sensitivity = check_sensitivity(sensitivity, "sensitivity")
    meas, scale = _laplace(sensitivity, check_epsilon(epsilon))
    ints = [check_i64(v, "values") for v in values]
    if not ints:
        return [], scale
    return list(meas(ints)), scale


@lru_cache(maxsize=1024)
def _laplace(sensitivity: int, epsilon: float) -> tuple[Any, float]:
    """The measurement for (sensitivity, epsilon); cached, as the engine asks for few pairs."""
    return smallest_scale(
        lambda s: dp.m.make_laplace(*_SPACE, scale=s),
        d_in=sensitivity,
        within=lambda d_out: d_out <= epsilon,
        start=sensitivity / epsilon,
    )


# --- shared helpers ----------------------------------------------------------------------


def smallest_scale(
    make: Callable[[float], Any],
    *,
    d_in: Any,
    within: Callable[[Any], bool],
    start: float,
) -> tuple[Any, float]:
    """Smallest float scale near ``start`` whose measurement satisfies ``within(map(d_in))``.

    Steps up one ulp at a time while the map fails, then down while the next lower scale
    still passes. The nominal scale is at most a few ulps off, so this is 1-3 map calls.
    Returns the measurement built with that scale, and the scale.
    """

    def passes(scale: float) -> Any:
        meas = make(scale)
        return meas if within(meas.map(d_in)) else None

    scale = start
    meas = passes(scale)
    for _ in range(64):
        if meas is not None:
            break
        scale = math.nextafter(scale, math.inf)
        meas = passes(scale)
    else:  # pragma: no cover - OpenDP's maps are a few ulps from nominal
        raise RuntimeError(f"no scale near {start!r} satisfies OpenDP's privacy map")
    while scale > 0:
        lower = math.nextafter(scale, 0.0)
        lower_meas = passes(lower)
        if lower_meas is None:
            break
        scale, meas = lower, lower_meas
    return meas, scale


def check_epsilon(epsilon: float) -> float:
    """Epsilon must be a finite number > 0 (NaN, inf and <= 0 give no guarantee)."""
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}") from None
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    return eps


def check_delta(delta: float) -> float:
    """Delta must lie in the open interval (0, 1)."""
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"delta must be in the open interval (0, 1), got {delta!r}") from None
    if not 0.0 < d < 1.0:  # False for NaN
        raise ValueError(f"delta must be in the open interval (0, 1), got {delta!r}")
    return d


def check_sensitivity(value: int, name: str) -> int:
    """A sensitivity/distance bound must be an integer >= 1 (within i64)."""
    n = _as_int(value, name, f"{name} must be an integer >= 1")
    if not 1 <= n <= I64_MAX:
        raise ValueError(f"{name} must be an integer in [1, 2**63 - 1], got {n}")
    return n


def check_i64(value: int, name: str) -> int:
    """Values are passed to OpenDP as 64-bit integers, so they must fit in i64."""
    n = _as_int(value, name, f"{name} must be integers")
    if not I64_MIN <= n <= I64_MAX:
        raise ValueError(
            f"{name} must fit in a signed 64-bit integer [-2**63, 2**63 - 1]; "
            "use coarser quantization or tighter bounds"
        )
    return n


def _as_int(value: Any, name: str, message: str) -> int:
    if isinstance(value, float):
        raise ValueError(f"{message}, got a float")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{message}, got {type(value).__name__}") from None
