"""Accuracy of discrete Laplace noise: what a released cell's scale means to a reader.

The half-width comes from OpenDP's own accuracy function, so the interval we print is the one
OpenDP proves; ``coverage_probability`` is the exact closed form, used by tests and by the
"expected accuracy before spending budget" endpoint.
"""

from __future__ import annotations

import math

import opendp.prelude as dp

__all__ = ["coverage_probability", "half_width"]


def half_width(scale: float, alpha: float = 0.05) -> float:
    """Half-width ``a`` with P(|noise| >= a) = ``alpha`` (OpenDP's accuracy for the scale).

    The closed interval ``[released - a, released + a]`` contains the true value with
    probability at least ``1 - alpha`` (OpenDP: "you can take the floor without affecting the
    coverage probability").
    """
    scale = _check_scale(scale)
    alpha = _check_alpha(alpha)
    if scale == 0.0:
        return 0.0
    return float(dp.discrete_laplacian_scale_to_accuracy(scale, alpha))


def coverage_probability(scale: float, half_width: float) -> float:
    """Exact P(|noise| <= half_width) for discrete Laplace noise, P(k) ∝ exp(-|k| / scale).

    With p = exp(-1/scale): P(|noise| > m) = 2 p^(m+1) / (1 + p) for an integer m >= 0.
    """
    scale = _check_scale(scale)
    if half_width < 0:
        return 0.0
    if scale == 0.0:
        return 1.0
    m = math.floor(half_width)
    p = math.exp(-1.0 / scale)
    return 1.0 - 2.0 * math.exp(-(m + 1) / scale) / (1.0 + p)


def _check_scale(scale: float) -> float:
    s = float(scale)
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    return s


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in the open interval (0, 1), got {alpha!r}")
    return a
