"""The exact interval of a SUM released as centred sum + centre x count: the closed-form tail
of A + w*B (A, B discrete Laplace) against a direct convolution, and the half-width's
minimality."""

from __future__ import annotations

import math

import pytest

from sandbox.privacy import combined_half_width, combined_tail, coverage_probability, half_width

CASES = [(1.0, 1.0, 1), (2.0, 0.5, 3), (10.0, 2.0, 5), (0.3, 4.0, 2), (50.0, 2.0, 25), (1.5, 0.7, 7)]


def _convolved_tail(a: float, b: float, w: int, t: int) -> float:
    """P(|A + wB| > t) summed term by term over B, with A's survival function."""
    p, r = math.exp(-1 / a), math.exp(-1 / b)

    def survival(k: int) -> float:  # P(A > k)
        return p ** (k + 1) / (1 + p) if k >= 0 else 1 - p ** (-k) / (1 + p)

    span = int(60 * b) + 10
    return sum(
        (1 - r) / (1 + r) * r ** abs(j) * (survival(t - w * j) + survival(t + w * j)) for j in range(-span, span + 1)
    )


@pytest.mark.parametrize(("a", "b", "w"), CASES)
def test_closed_form_tail_matches_the_convolution(a, b, w) -> None:
    for t in range(0, int(8 * (a + w * b))):
        assert combined_tail(a, b, w, t) == pytest.approx(_convolved_tail(a, b, w, t), abs=1e-12)


@pytest.mark.parametrize(("a", "b", "w"), CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_half_width_is_the_smallest_that_covers(a, b, w, alpha) -> None:
    t = combined_half_width(a, b, w, alpha)
    assert combined_tail(a, b, w, t) <= alpha < combined_tail(a, b, w, t - 1)


def test_degenerate_cases_reduce_to_one_discrete_laplace() -> None:
    for t in (0, 3, 10):
        assert combined_tail(2.0, 0.0, 5, t) == pytest.approx(1 - coverage_probability(2.0, t))
        assert combined_tail(2.0, 3.0, 0, t) == pytest.approx(1 - coverage_probability(2.0, t))
    assert combined_half_width(2.0, 0.0, 5) == math.floor(half_width(2.0))


def test_centring_a_sum_on_0_to_hi_narrows_its_interval() -> None:
    """On [0, hi] with the count shared: the centred sum's noise (scale s/2) plus the centre
    hi/2 times the count's noise beats one sum with scale s, by about a third."""
    s = 100.0
    assert combined_half_width(s / 2, 2.0, 25) < 0.75 * half_width(s)
