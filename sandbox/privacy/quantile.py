"""Private quantiles: OpenDP's quantile scores over a histogram, then OpenDP's noisy max.

The database computes the histogram over the candidate grid (values are clamped and snapped
to the grid, so each value equals one candidate); only those counts reach Python. From them we
compute exactly the integer scores ``dp.t.make_quantile_score_candidates`` would compute on the
expanded data (no need to ship rows), and let ``dp.m.make_noisy_max`` pick the index.

Score of candidate ``i`` (OpenDP 0.16, ``compute_score``; lower is better)::

    lt = hist[0] + ... + hist[i-1]      # values below the candidate
    eq = hist[i]                         # values equal to it (ties don't count against it)
    n  = sum(hist)
    score_i = | den * min(lt, L) - num * min(n - eq, L) |,   L = (2**64 - 1) // den

``num / den`` is ``alpha`` as OpenDP discretizes it: the exact binary fraction of the float if
its denominator is < 10_000 (0.5 -> 1/2, 0.25 -> 1/4), otherwise ``floor(alpha * 10_000)`` over
10_000 (0.1 -> 1000/10_000). ``score / den`` is the distance, in records, between the
candidate's rank and the target rank. Adding or removing ``d_in`` records moves every score by
at most ``d_in * max(num, den - num)`` (the transformation's stability map, read from OpenDP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

from .mechanisms import check_epsilon, check_sensitivity, smallest_scale

__all__ = ["noisy_quantile_index", "quantile_rank_error", "quantile_scale", "quantile_scores"]

_U64_MAX = 2**64 - 1
_ALPHA_GRANULARITY = 10_000  # OpenDP's default alpha denominator when the size is unknown
_DATA_SPACE = dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance()


def quantile_scores(hist: Sequence[int], alpha: float) -> list[int]:
    """OpenDP's quantile score of every candidate, from the per-candidate counts ``hist``."""
    counts = _check_hist(hist)
    num, den = _alpha_fraction(alpha)
    limit = _U64_MAX // den
    n = sum(counts)
    scores, lt = [], 0
    for eq in counts:
        scores.append(abs(den * min(lt, limit) - num * min(n - eq, limit)))
        lt += eq
    return scores


def noisy_quantile_index(
    hist: Sequence[int], alpha: float, *, d_in: int, epsilon: float
) -> tuple[int, float]:
    """Privately pick the index of the candidate nearest the ``alpha``-quantile.

    ``d_in`` is the symmetric distance (rows added plus removed) one privacy unit can cause,
    i.e. ``max_rows`` after contribution bounding. Returns the index and the noise scale (in
    score units, see ``quantile_rank_error``).
    """
    scores = quantile_scores(hist, alpha)
    meas, scale = _selector(
        len(scores), float(alpha), check_sensitivity(d_in, "d_in"), check_epsilon(epsilon)
    )
    return int(meas(scores)), scale


def quantile_scale(n_candidates: int, alpha: float, *, d_in: int, epsilon: float) -> float:
    """The noise scale (score units) `noisy_quantile_index` will use, without any data: for
    `explain` and the noise plan."""
    return _selector(int(n_candidates), float(alpha), check_sensitivity(d_in, "d_in"), check_epsilon(epsilon))[1]


def quantile_rank_error(
    scale: float, n_candidates: int, alpha: float = 0.05, *, quantile: float
) -> float:
    """With probability >= 1 - ``alpha``, the chosen candidate's rank is within this of the best.

    OpenDP's noisy max (MaxDivergence) adds Exponential(scale) noise E_j to each utility
    u_j = -score_j and reports the argmax. The winner w satisfies
    u_w + E_w >= u_best + E_best >= u_best, so u_best - u_w <= max_j E_j, and
    P(max_j E_j > t) = 1 - (1 - e^(-t/scale))^n. Solving for ``alpha`` gives
    t = -scale * ln(1 - (1 - alpha)^(1/n))  (<= scale * ln(n / alpha)). Scores are ``den``
    times a rank distance (see module docstring), so the result is t / den, in records.
    """
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in the open interval (0, 1), got {alpha!r}")
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be >= 1, got {n_candidates!r}")
    _, den = _alpha_fraction(quantile)
    tail = -math.expm1(math.log1p(-alpha) / n_candidates)  # 1 - (1 - alpha)^(1/n)
    return -scale * math.log(tail) / den


@lru_cache(maxsize=1024)
def _selector(n_candidates: int, alpha: float, d_in: int, epsilon: float) -> tuple[Any, float]:
    """Noisy max over the score vector, scaled so OpenDP's *chained* map is <= epsilon."""
    score = dp.t.make_quantile_score_candidates(
        *_DATA_SPACE,
        list(range(n_candidates)),  # the candidates' values do not enter the map
        alpha,
    )
    sensitivity = score.map(d_in)
    _, scale = smallest_scale(
        lambda s: score >> dp.m.then_noisy_max(dp.max_divergence(), scale=s, negate=True),
        d_in=d_in,
        within=lambda d_out: d_out <= epsilon,
        start=2.0 * sensitivity / epsilon,  # 2x: the scores are not monotonic
    )
    # Run only the selection step on our histogram scores; the chain above vouches for it.
    select = dp.m.make_noisy_max(
        score.output_domain, score.output_metric, dp.max_divergence(), scale=scale, negate=True
    )
    return select, scale


def _alpha_fraction(alpha: float) -> tuple[int, int]:
    """``alpha`` as OpenDP 0.16 discretizes it for inputs of unknown size: (num, den)."""
    a = float(alpha)
    if not 0.0 <= a <= 1.0:  # False for NaN
        raise ValueError(f"quantile alpha must be in [0, 1] (0.5 is the median), got {alpha!r}")
    exact = Fraction(a)
    if exact.denominator < _ALPHA_GRANULARITY:
        return exact.numerator, exact.denominator
    return math.floor(a * float(_ALPHA_GRANULARITY)), _ALPHA_GRANULARITY


def _check_hist(hist: Sequence[int]) -> list[int]:
    try:
        counts = [int(c) for c in hist]
    except (TypeError, ValueError):
        raise ValueError("hist must hold non-negative integer counts") from None
    if not counts:
        raise ValueError("hist must have at least one candidate")
    if any(c < 0 for c in counts) or any(c != h for c, h in zip(counts, hist, strict=True)):
        raise ValueError("hist must hold non-negative integer counts")
    return counts
