"""Discrete Laplace: the noise OpenDP draws has exactly the distribution we claim.

Statistical tests use a false-failure probability of at most 1e-6 each (p-value threshold).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import opendp.prelude as dp
import pytest
from scipy import stats

import sandbox.privacy as privacy
from sandbox.privacy import coverage_probability, discrete_laplace, half_width, laplace_scale

P_MIN = 1e-6  # false-failure probability of each statistical assertion
SETTINGS = [(1, 1.0), (3, 0.5), (10, 2.0)]  # (sensitivity, epsilon): scales 1, 6, 5


def pmf(k: int, scale: float) -> float:
    p = math.exp(-1.0 / scale)
    return (1 - p) / (1 + p) * p ** abs(k)


def upper_tail(m: int, scale: float) -> float:
    """P(X >= m) for m >= 1."""
    p = math.exp(-1.0 / scale)
    return p**m / (1 + p)


def noise_sample(sensitivity: int, epsilon: float, n: int, center: int) -> tuple[list[int], float]:
    noisy, scale = discrete_laplace([center] * n, sensitivity=sensitivity, epsilon=epsilon)
    return [v - center for v in noisy], scale


def test_public_surface() -> None:
    assert sorted(privacy.__all__) == [
        "ThresholdResult",
        "combined_half_width",
        "combined_tail",
        "coverage_probability",
        "discrete_laplace",
        "half_width",
        "laplace_scale",
        "noisy_quantile_index",
        "quantile_rank_error",
        "quantile_scale",
        "quantile_scores",
        "threshold_counts",
        "threshold_parameters",
    ]


def test_no_noise_outside_opendp() -> None:
    """All noise comes from OpenDP: the package never imports a Python/numpy RNG."""
    banned = {"random", "secrets", "numpy", "scipy"}
    for path in Path(privacy.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & banned, f"{path.name} imports {names}"


@pytest.mark.parametrize(("sensitivity", "epsilon"), SETTINGS)
def test_noise_matches_discrete_laplace_pmf(sensitivity: int, epsilon: float) -> None:
    n = 60_000
    noise, scale = noise_sample(sensitivity, epsilon, n, center=2**40 + 7)
    assert scale == laplace_scale(sensitivity, epsilon)
    # Bins -K..K with at least ~20 expected draws each, plus the two pooled tails.
    k_max = 0
    while n * pmf(k_max + 1, scale) >= 20:
        k_max += 1
    counts = {k: 0 for k in range(-k_max, k_max + 1)}
    low = high = 0
    for x in noise:
        if x < -k_max:
            low += 1
        elif x > k_max:
            high += 1
        else:
            counts[x] += 1
    observed = [low, *counts.values(), high]
    tail = n * upper_tail(k_max + 1, scale)
    expected = [tail, *(n * pmf(k, scale) for k in counts), tail]
    assert math.isclose(sum(expected), n, rel_tol=1e-9)
    assert stats.chisquare(observed, expected).pvalue > P_MIN


@pytest.mark.parametrize(("sensitivity", "epsilon"), SETTINGS)
def test_half_width_covers_95_percent(sensitivity: int, epsilon: float) -> None:
    n = 40_000
    noise, scale = noise_sample(sensitivity, epsilon, n, center=-123)
    hw = half_width(scale)
    assert hw == dp.discrete_laplacian_scale_to_accuracy(scale, 0.05)
    exact = coverage_probability(scale, hw)
    assert 0.95 <= exact < 0.98  # OpenDP's half-width is conservative, by less than one step
    covered = sum(abs(x) <= hw for x in noise)
    # consistent with the exact coverage, and not below 95%
    assert stats.binomtest(covered, n, exact).pvalue > P_MIN
    assert stats.binomtest(covered, n, 0.95, alternative="less").pvalue > P_MIN


@pytest.mark.parametrize(("sensitivity", "epsilon"), [*SETTINGS, (7, 0.3), (1_000_000, 0.01)])
def test_scale_is_smallest_that_opendp_accepts(sensitivity: int, epsilon: float) -> None:
    scale = laplace_scale(sensitivity, epsilon)
    space = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    assert dp.m.make_laplace(*space, scale=scale).map(sensitivity) <= epsilon
    smaller = math.nextafter(scale, 0.0)
    assert dp.m.make_laplace(*space, scale=smaller).map(sensitivity) > epsilon
    assert math.isclose(scale, sensitivity / epsilon, rel_tol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 10, 1000])
def test_scale_is_proportional(factor: int) -> None:
    base = laplace_scale(3, 0.7)
    assert math.isclose(laplace_scale(3 * factor, 0.7), factor * base, rel_tol=1e-12)
    assert math.isclose(laplace_scale(3, 0.7 / factor), factor * base, rel_tol=1e-12)
    assert laplace_scale(3 * factor, 0.7) > base
    assert laplace_scale(3, 0.7 / factor) > base


def test_empty_and_large_values() -> None:
    assert discrete_laplace([], sensitivity=1, epsilon=1.0) == ([], 1.0)
    big = 2**62
    noisy, scale = discrete_laplace([big, -big], sensitivity=1, epsilon=1.0)
    assert abs(noisy[0] - big) < 100 and abs(noisy[1] + big) < 100  # P(fail) ~ e^-100


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 1.5, "3", None])
def test_values_outside_i64_or_not_int_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="values must"):
        discrete_laplace([1, value], sensitivity=1, epsilon=1.0)  # type: ignore[list-item]


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.nan, math.inf, "x"])
def test_bad_epsilon_rejected(epsilon: object) -> None:
    with pytest.raises(ValueError, match=r"epsilon must be a finite number > 0"):
        discrete_laplace([1], sensitivity=1, epsilon=epsilon)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"epsilon must be a finite number > 0"):
        laplace_scale(1, epsilon)  # type: ignore[arg-type]


@pytest.mark.parametrize("sensitivity", [0, -1, 1.0, 2**63])
def test_bad_sensitivity_rejected(sensitivity: object) -> None:
    with pytest.raises(ValueError, match="sensitivity must be an integer"):
        laplace_scale(sensitivity, 1.0)  # type: ignore[arg-type]


def test_coverage_probability_closed_form() -> None:
    scale, m = 2.5, 4
    direct = sum(pmf(k, scale) for k in range(-m, m + 1))
    assert math.isclose(coverage_probability(scale, m + 0.7), direct, rel_tol=1e-12)
    with pytest.raises(ValueError, match=r"alpha must be in the open interval \(0, 1\)"):
        half_width(1.0, alpha=1.0)
