"""Private partition selection: release a group only if its noisy count clears a threshold.

When the key set is not public, merely *listing* a key that only one person has would reveal
that person. OpenDP's ``make_laplace_threshold`` adds discrete Laplace noise to every count
and drops those below a threshold; a key that exists in only one neighbouring dataset then
appears with probability at most delta. Keys absent from the data are never output.

Parameters: the scale comes from epsilon (``epsilon = min(l1, l0 * linf) / scale``) and the
threshold from delta (roughly ``linf + scale * ln(l0 / delta)``).

OpenDP 0.16 off-by-one (opendp/opendp#2922, open): the measurement keeps counts
``noisy >= threshold`` but its map bounds P(noise > threshold - li) instead of
P(noise >= threshold - li), where li = min(l1, linf) is the most one unit adds to one key,
under-reporting delta by a factor of about e^(1/scale). We take the
smallest threshold T whose OpenDP map is within (epsilon, delta) and use T + 1: the true
delta at T + 1, P(noise >= T + 1 - li), is exactly what OpenDP's map bounds at T.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

from .mechanisms import (
    I64_MAX,
    check_delta,
    check_epsilon,
    check_i64,
    check_sensitivity,
    smallest_scale,
)

__all__ = ["ThresholdResult", "threshold_counts", "threshold_parameters"]

_MAX_L0 = 2**32 - 1  # OpenDP takes l0 as u32
# Thresholds beyond this are refused before OpenDP is asked: no group of any real dataset could
# pass them, and OpenDP's i64 arithmetic overflows near 2**63.
MAX_THRESHOLD = 2**53
# counts per key (keys renamed to strings), and a unit's (l0, l1, linf) contribution bounds
_SPACE = (
    dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64")),
    dp.l01inf_distance(dp.absolute_distance(T="i64")),
)


@dataclass(frozen=True)
class ThresholdResult:
    """Noisy counts of the keys that passed, and the parameters that produced them."""

    released: dict[Hashable, int] = field(repr=False)
    scale: float
    threshold: int


def threshold_counts(
    counts: Mapping[Hashable, int],
    *,
    l0: int,
    l1: int,
    linf: int,
    epsilon: float,
    delta: float,
) -> ThresholdResult:
    """Noisy counts for the keys whose noisy count is >= the threshold; others are dropped.

    ``l0``: groups one unit can touch (``max_groups``); ``linf``: rows it can add to one group;
    ``l1``: rows it can add in total (``max_rows``).
    """
    meas, scale, threshold = _threshold(
        *_check_d_in(l0, l1, linf), check_epsilon(epsilon), check_delta(delta)
    )
    keys = list(counts)
    ids = {str(i): key for i, key in enumerate(keys)}  # OpenDP keys are strings
    data = {str(i): check_i64(counts[key], "counts") for i, key in enumerate(keys)}
    released = meas(data) if data else {}
    return ThresholdResult({ids[i]: int(v) for i, v in released.items()}, scale, threshold)


def threshold_parameters(
    *, l0: int, l1: int, linf: int, epsilon: float, delta: float
) -> tuple[float, int]:
    """(scale, threshold) that ``threshold_counts`` would use, without touching data."""
    _, scale, threshold = _threshold(
        *_check_d_in(l0, l1, linf), check_epsilon(epsilon), check_delta(delta)
    )
    return scale, threshold


@lru_cache(maxsize=1024)
def _threshold(l0: int, l1: int, linf: int, epsilon: float, delta: float) -> tuple[Any, float, int]:
    d_in = (l0, l1, linf)
    sens = min(l1, l0 * linf)  # OpenDP's effective l1, which sets epsilon

    def make(scale: float, threshold: int) -> Any:
        return dp.m.make_laplace_threshold(*_SPACE, scale=scale, threshold=threshold)

    # Epsilon does not depend on the threshold: fix the scale with a huge threshold first.
    _, scale = smallest_scale(
        lambda s: make(s, I64_MAX),
        d_in=d_in,
        within=lambda d_out: d_out[0] <= epsilon,
        start=sens / epsilon,
    )

    def ok(threshold: int) -> Any:
        meas = make(scale, threshold)
        eps, dlt = meas.map(d_in)
        return meas if eps <= epsilon and dlt <= delta else None

    # Start from the discrete Laplace tail P(Z >= t) = e^(-t/s) / (1 + e^(-1/s)) per key
    # (OpenDP's bound is this or slightly looser), then walk to the smallest integer
    # threshold OpenDP accepts. OpenDP requires threshold >= li = min(l1, linf).
    li = min(l1, linf)
    per_key = -math.expm1(math.log1p(-delta) / l0)  # 1 - (1 - delta)^(1/l0)
    if per_key <= 0.0:
        raise ValueError(f"delta {delta!r} is too small to split over {l0} groups")
    tail = scale * (-math.log(per_key) - math.log1p(math.exp(-1.0 / scale)))
    if not li + tail < MAX_THRESHOLD:
        raise ValueError(f"the threshold for delta {delta!r} at scale {scale!r} exceeds {MAX_THRESHOLD}")
    threshold = li + max(0, math.ceil(tail))
    if ok(threshold) is not None:
        while threshold > li and ok(threshold - 1) is not None:
            threshold -= 1
    else:
        low, step = threshold + 1, 1
        threshold += step
        while ok(threshold) is None:  # gallop up, then bisect in [low, threshold]
            low, step = threshold + 1, step * 2
            threshold += step
        while low < threshold:
            mid = (low + threshold) // 2
            if ok(mid) is None:
                low = mid + 1
            else:
                threshold = mid
    threshold += 1  # opendp/opendp#2922: see the module docstring
    return ok(threshold), scale, threshold


def _check_d_in(l0: int, l1: int, linf: int) -> tuple[int, int, int]:
    l0 = check_sensitivity(l0, "l0")
    if l0 > _MAX_L0:
        raise ValueError(f"l0 must be an integer in [1, 2**32 - 1], got {l0}")
    return l0, check_sensitivity(l1, "l1"), check_sensitivity(linf, "linf")
