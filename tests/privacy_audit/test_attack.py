"""The audit's own statistics, on synthetic samples whose truth is known (numpy draws stand in
for releases here; the product's noise always comes from OpenDP)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.privacy_audit.attack import audit, clopper_pearson, epsilon_lower_bound


@pytest.mark.parametrize("n", [10, 1000])
def test_clopper_pearson_at_the_edges(n: int) -> None:
    alpha = 1e-3
    assert clopper_pearson(0, n, alpha) == (0.0, pytest.approx(1 - alpha ** (1 / n)))
    assert clopper_pearson(n, n, alpha) == (pytest.approx(alpha ** (1 / n)), 1.0)
    low, high = clopper_pearson(n // 2, n, alpha)
    assert low < 0.5 < high


def test_no_evidence_is_minus_infinity() -> None:
    assert epsilon_lower_bound(0, 100, 0, 100, delta=0.0, alpha=1e-6) == -math.inf
    assert epsilon_lower_bound(5, 1000, 0, 1000, delta=0.01, alpha=1e-6) == -math.inf, "within delta"


def test_the_bound_approaches_a_known_epsilon_from_below() -> None:
    """Randomized response with epsilon 1: P[1 | D] = e/(1+e), P[1 | D'] = 1/(1+e)."""
    rng = np.random.default_rng(7)
    p = math.e / (1 + math.e)
    n = 200_000
    d = {"bit": (rng.random(n) < p).astype(float)}
    d_prime = {"bit": (rng.random(n) < 1 - p).astype(float)}
    result = audit(d, d_prime, claimed_epsilon=1.0, claimed_delta=0.0, alpha=1e-8)
    assert 0.95 < result.epsilon_lb <= 1.0, result
    louder = {"bit": (rng.random(n) < math.e**2 / (1 + math.e**2)).astype(float)}
    quieter = {"bit": (rng.random(n) < 1 / (1 + math.e**2)).astype(float)}
    assert audit(louder, quieter, claimed_epsilon=1.0, claimed_delta=0.0, alpha=1e-8).epsilon_lb > 1.9


def test_the_set_is_chosen_on_other_samples_than_it_is_tested_on() -> None:
    """Identical distributions: whatever S the first part picks, the second part shows no
    evidence beyond chance (a set fitted and tested on the same samples would)."""
    rng = np.random.default_rng(11)
    same = [{"x": rng.normal(size=5000)} for _ in range(2)]
    result = audit(*same, claimed_epsilon=1.0, claimed_delta=0.0, alpha=1e-6)
    assert result.epsilon_lb <= 0.0
