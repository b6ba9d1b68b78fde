"""Quantiles: our histogram scores are OpenDP's, and the selection is OpenDP's noisy max."""

from __future__ import annotations

import math
import random
from collections import Counter

import opendp.prelude as dp
import pytest
from scipy import integrate, stats

from sandbox.privacy import noisy_quantile_index, quantile_rank_error, quantile_scores

P_MIN = 1e-6
ALPHAS = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0, 1 / 3, 0.12349, 0.99999, 1 / 8192, 3 / 16384]


def opendp_scores(hist: list[int], candidates: list[int], alpha: float) -> list[int]:
    data = [c for c, h in zip(candidates, hist, strict=True) for _ in range(h)]
    random.Random(len(data)).shuffle(data)
    score = dp.t.make_quantile_score_candidates(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance(), candidates, alpha
    )
    return list(score(data))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_scores_equal_opendp(alpha: float) -> None:
    rng = random.Random(alpha)
    for _ in range(25):
        n = rng.randint(1, 30)
        candidates = sorted(rng.sample(range(-1000, 1000), n))
        hist = [rng.choice([0, 0, 1, 2, rng.randint(0, 60)]) for _ in range(n)]
        assert quantile_scores(hist, alpha) == opendp_scores(hist, candidates, alpha)


def test_scores_of_empty_data_equal_opendp() -> None:
    assert quantile_scores([0, 0, 0], 0.5) == opendp_scores([0, 0, 0], [1, 2, 3], 0.5)


def selection_chain(n: int, alpha: float, d_in: int, scale: float) -> dp.Measurement:
    score = dp.t.make_quantile_score_candidates(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance(), list(range(n)), alpha
    )
    return score >> dp.m.then_noisy_max(dp.max_divergence(), scale=scale, negate=True)


@pytest.mark.parametrize(
    ("alpha", "d_in", "epsilon"), [(0.5, 1, 1.0), (0.1, 3, 0.7), (0.25, 2, 0.05), (0.9, 10, 5.0)]
)
def test_scale_is_smallest_that_the_chain_accepts(alpha: float, d_in: int, epsilon: float) -> None:
    _, scale = noisy_quantile_index([1, 2, 3], alpha, d_in=d_in, epsilon=epsilon)
    assert selection_chain(3, alpha, d_in, scale).map(d_in) <= epsilon
    smaller = math.nextafter(scale, 0.0)
    assert selection_chain(3, alpha, d_in, smaller).map(d_in) > epsilon
    # OpenDP's score sensitivity: d_in * max(num, den - num), doubled by the noisy max
    num, den = {0.5: (1, 2), 0.1: (1000, 10_000), 0.25: (1, 4), 0.9: (9000, 10_000)}[alpha]
    assert math.isclose(scale, 2 * d_in * max(num, den - num) / epsilon, rel_tol=1e-12)


def exponential_noisy_min_probs(scores: list[int], scale: float) -> list[float]:
    """P(i wins) when Exponential(scale) noise is added to -score and the argmax reported."""
    utils = [-s for s in scores]
    probs = []
    for i, ui in enumerate(utils):

        def density(y: float, i: int = i, ui: int = ui) -> float:
            value = math.exp(-(y - ui) / scale) / scale
            for j, uj in enumerate(utils):
                if j != i:
                    value *= max(0.0, -math.expm1(-(y - uj) / scale))
            return value

        breaks = sorted({u for u in utils if u > ui}) or None
        top = max(utils) + 60 * scale
        probs.append(integrate.quad(density, ui, top, points=breaks, limit=200)[0])
    return probs


def test_selection_frequencies_match_opendp_noisy_max() -> None:
    """OpenDP 0.16's noisy max under MaxDivergence is report-noisy-max with *exponential*
    noise (permute-and-flip), not the Gumbel/softmax exponential mechanism."""
    hist, n = [3, 5, 2, 4], 15_000
    scores = quantile_scores(hist, 0.5)
    assert scores == [11, 3, 4, 10]
    draws = [noisy_quantile_index(hist, 0.5, d_in=1, epsilon=1.0) for _ in range(n)]
    scale = draws[0][1]
    assert scale == 2.0
    counts = Counter(i for i, _ in draws)
    probs = exponential_noisy_min_probs(scores, scale)
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-9)
    observed = [counts[i] for i in range(len(hist))]
    assert stats.chisquare(observed, [n * p for p in probs]).pvalue > P_MIN
    softmax = [math.exp(-s / scale) for s in scores]
    expected_softmax = [n * w / sum(softmax) for w in softmax]
    assert stats.chisquare(observed, expected_softmax).pvalue < P_MIN  # it is not Gumbel


def test_concentrates_on_median_within_rank_error() -> None:
    n_cand, draws, fail_alpha = 101, 1_500, 0.05
    hist = [max(0, 200 - 8 * abs(i - 50)) for i in range(n_cand)]  # peaked at index 50
    total = sum(hist)
    below = [sum(hist[:i]) for i in range(n_cand)]
    picks = [noisy_quantile_index(hist, 0.5, d_in=1, epsilon=1.0) for _ in range(draws)]
    scale = picks[0][1]
    assert Counter(i for i, _ in picks).most_common(1)[0][0] == 50
    bound = quantile_rank_error(scale, n_cand, fail_alpha, quantile=0.5)
    assert math.isclose(bound, scale * math.log(n_cand / fail_alpha) / 2, rel_tol=0.05)
    # rank error of a pick, in records: |#below - q * (n - #equal)| minus that of the best
    errors = [abs(below[i] - 0.5 * (total - hist[i])) for i in range(n_cand)]
    exceed = sum(errors[i] - min(errors) > bound for i, _ in picks)
    assert stats.binomtest(exceed, draws, fail_alpha, alternative="greater").pvalue > P_MIN


@pytest.mark.parametrize("alpha", [-0.1, 1.1, math.nan])
def test_bad_quantile_rejected(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"quantile alpha must be in \[0, 1\]"):
        quantile_scores([1, 2], alpha)


@pytest.mark.parametrize("hist", [[], [1, -1], [1.5, 2], ["1"], [None], ["x"]])
def test_bad_histogram_rejected(hist: list) -> None:
    with pytest.raises(ValueError, match="hist must"):
        quantile_scores(hist, 0.5)


@pytest.mark.parametrize("epsilon", [0.0, -2.0, math.nan, math.inf])
def test_bad_epsilon_rejected(epsilon: float) -> None:
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        noisy_quantile_index([1, 2], 0.5, d_in=1, epsilon=epsilon)
