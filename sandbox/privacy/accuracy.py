"""Accuracy of discrete Laplace noise: what a released cell's scale means to a reader.

The half-width comes from OpenDP's own accuracy function, so the interval we print is the one
OpenDP proves; ``coverage_probability`` is the exact closed form, used by tests and by the
"expected accuracy before spending budget" endpoint.
"""

from __future__ import annotations

import math
from functools import lru_cache

import opendp.prelude as dp

__all__ = ["combined_half_width", "combined_tail", "coverage_probability", "half_width"]


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
    return _accuracy(scale, alpha)


@lru_cache(maxsize=4096)
def _accuracy(scale: float, alpha: float) -> float:
    """OpenDP's accuracy, kept: compiling asks it a few times a query for few distinct scales,
    at some 80 microseconds a call."""
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


def combined_tail(scale_a: float, scale_b: float, weight: int, t: int) -> float:
    """Exact P(|A + weight * B| > t) for independent discrete Laplace A, B (scales a, b), in
    closed form: a SUM released as its centred sum plus centre x count carries this noise.

    With p = e^(-1/a), r = e^(-1/b), S(k) = P(A > k) and P(B = j) = (1-r)/(1+r) r^|j|,
    P(|A + x| > t) = S(t - x) + S(t + x), and the sum over j splits into geometric series
    (j*w <= t, where S(t - x) = p^(t-x+1)/(1+p), and j*w > t, where it is 1 - p^(x-t)/(1+p)).
    """
    a, b = _check_scale(scale_a), _check_scale(scale_b)
    if t < 0:
        return 1.0
    if b == 0.0 or weight == 0:
        return 1.0 - coverage_probability(a, t)
    if a == 0.0:
        return 1.0 - coverage_probability(b, t // weight)
    la, lr, w = -1.0 / a, -1.0 / b, int(weight)
    p, r = math.exp(la), math.exp(lr)
    lu = lr + w * la  # u = r p^w
    c_r = -math.expm1(lr) / (1.0 + r)
    # j >= 1, S(t + jw) = p^(t+jw+1)/(1+p)
    above = math.exp((t + 1) * la + lu) / (-math.expm1(lu)) / (1.0 + p)
    # 1 <= j <= K, S(t - jw) = p^(t-jw+1)/(1+p): exponents (t+1)la + j d, summed from the largest
    k = t // w
    below = 0.0
    if k >= 1:
        d = lr - w * la
        if d == 0.0:
            below = k * math.exp((t + 1) * la + d)
        elif d < 0:
            below = math.exp((t + 1) * la + d) * math.expm1(d * k) / math.expm1(d)
        else:
            below = math.exp((t + 1) * la + d * k) * math.expm1(-d * k) / math.expm1(-d)
        below /= 1.0 + p
    # j > K, S(t - jw) = 1 - p^(jw-t)/(1+p)
    beyond = math.exp((k + 1) * lr) / (-math.expm1(lr))
    beyond -= math.exp((k + 1) * lr + (w * (k + 1) - t) * la) / (-math.expm1(lu)) / (1.0 + p)
    zero = 2.0 * math.exp((t + 1) * la) / (1.0 + p)
    return min(1.0, max(0.0, c_r * (zero + 2.0 * (above + below + beyond))))


def combined_half_width(scale_a: float, scale_b: float, weight: int, alpha: float = 0.05) -> int:
    """The smallest integer t with P(|A + weight * B| > t) <= alpha (see combined_tail): the
    exact 95% half-width of a centred sum plus centre x count, in grid units. A union bound
    would be about a quarter wider."""
    alpha = _check_alpha(alpha)
    lo = 0
    hi = math.floor(half_width(scale_a, alpha / 2)) + int(weight) * math.floor(half_width(scale_b, alpha / 2)) + 1
    while combined_tail(scale_a, scale_b, weight, hi) > alpha:  # the union bound holds; belt and braces
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if combined_tail(scale_a, scale_b, weight, mid) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


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
