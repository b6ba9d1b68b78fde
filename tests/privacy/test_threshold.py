"""Private partition selection: rare keys stay hidden with probability >= 1 - delta."""

from __future__ import annotations

import math

import opendp.prelude as dp
import pytest
from scipy import stats

from sandbox.privacy import threshold_counts, threshold_parameters

P_MIN = 1e-6
SPACE = (
    dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64")),
    dp.l01inf_distance(dp.absolute_distance(T="i64")),
)


def release_probability(count: int, scale: float, threshold: int) -> float:
    """P(count + Z >= threshold) for discrete Laplace Z, when count < threshold."""
    p = math.exp(-1.0 / scale)
    return p ** (threshold - count) / (1 + p)


def opendp_delta(scale: float, threshold: int, d_in: tuple[int, int, int]) -> float:
    return dp.m.make_laplace_threshold(*SPACE, scale=scale, threshold=threshold).map(d_in)[1]


def test_reference_parameters() -> None:
    scale, threshold = threshold_parameters(l0=1, l1=1, linf=1, epsilon=1.0, delta=1e-7)
    assert (scale, threshold) == (1.0, 17)
    # one person's key (count 1) is listed with probability P(Z >= 16) <= 1e-7
    assert release_probability(1, scale, threshold) <= 1e-7 < release_probability(1, scale, 16)


@pytest.mark.parametrize(
    ("l0", "l1", "linf", "epsilon", "delta"),
    [(1, 1, 1, 1.0, 1e-7), (1, 1, 1, 1.0, 1e-2), (5, 10, 3, 0.5, 1e-6), (10, 10, 1, 2.0, 1e-9)],
)
def test_parameters_against_opendp_map(
    l0: int, l1: int, linf: int, epsilon: float, delta: float
) -> None:
    d_in = (l0, l1, linf)
    scale, threshold = threshold_parameters(l0=l0, l1=l1, linf=linf, epsilon=epsilon, delta=delta)
    meas = dp.m.make_laplace_threshold(*SPACE, scale=scale, threshold=threshold)
    assert meas.map(d_in)[0] <= epsilon
    # one above the smallest threshold OpenDP's map accepts (opendp/opendp#2922) ...
    assert (
        opendp_delta(scale, threshold - 1, d_in) <= delta < opendp_delta(scale, threshold - 2, d_in)
    )
    # ... which makes the *true* delta, 1 - (1 - P(Z >= T - li))^l0, at most the target
    single = release_probability(min(l1, linf), scale, threshold)
    assert -math.expm1(l0 * math.log1p(-single)) <= delta * (1 + 1e-9)


def test_opendp_threshold_off_by_one_still_present() -> None:
    """Guard for the +1 in threshold.py: OpenDP 0.16 reports P(Z > T - li), but releases
    noisy >= T. When this fails after an upgrade, OpenDP fixed #2922: drop the +1."""
    reported = opendp_delta(1.0, 5, (1, 1, 1))
    assert math.isclose(reported, release_probability(1, 1.0, 6), rel_tol=1e-9)
    assert reported < release_probability(1, 1.0, 5)  # the true chance for a count of 1


def test_rare_key_released_with_probability_at_most_delta() -> None:
    n, delta = 40_000, 1e-2
    result = threshold_counts(
        {f"person{i}": 1 for i in range(n)}, l0=1, l1=1, linf=1, epsilon=1.0, delta=delta
    )
    exact = release_probability(1, result.scale, result.threshold)
    assert exact <= delta
    released = len(result.released)
    assert stats.binomtest(released, n, exact).pvalue > P_MIN
    assert stats.binomtest(released, n, delta, alternative="greater").pvalue > P_MIN
    assert all(v >= result.threshold for v in result.released.values())


def test_big_counts_always_released_and_absent_keys_never() -> None:
    keys: dict[object, int] = {("a", 1): 10_000, 7: 5_000, "rare": 1, None: 0}
    for _ in range(200):
        result = threshold_counts(keys, l0=1, l1=1, linf=1, epsilon=1.0, delta=1e-7)
        assert set(result.released) <= set(keys)
        assert {("a", 1), 7} <= set(result.released)
        assert abs(result.released[7] - 5_000) < 60  # P(fail) ~ e^-60
    assert threshold_counts({}, l0=1, l1=1, linf=1, epsilon=1.0, delta=1e-7).released == {}


def test_threshold_grows_as_delta_shrinks_and_l0_grows() -> None:
    def threshold(delta: float, l0: int = 1) -> int:
        return threshold_parameters(l0=l0, l1=l0, linf=1, epsilon=1.0, delta=delta)[1]

    by_delta = [threshold(d) for d in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)]
    assert by_delta == sorted(set(by_delta))
    by_l0 = [threshold(1e-6, l0) for l0 in (1, 10, 100)]
    assert by_l0 == sorted(set(by_l0))


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_bad_delta_rejected(delta: float) -> None:
    with pytest.raises(ValueError, match=r"delta must be in the open interval \(0, 1\)"):
        threshold_counts({"a": 1}, l0=1, l1=1, linf=1, epsilon=1.0, delta=delta)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.nan, math.inf])
def test_bad_epsilon_rejected(epsilon: float) -> None:
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        threshold_counts({"a": 1}, l0=1, l1=1, linf=1, epsilon=epsilon, delta=1e-6)


@pytest.mark.parametrize(("l0", "l1", "linf"), [(0, 1, 1), (1, 0, 1), (1, 1, 0), (2**32, 1, 1)])
def test_bad_bounds_rejected(l0: int, l1: int, linf: int) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        threshold_parameters(l0=l0, l1=l1, linf=linf, epsilon=1.0, delta=1e-6)
