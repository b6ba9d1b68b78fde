"""A statistical lower bound on epsilon from releases on two neighbouring datasets.

(epsilon, delta)-DP promises, for every set S of outputs and both orders of a neighbouring pair,

    P[M(D) in S] <= e^epsilon * P[M(D') in S] + delta.

So any S, with a lower confidence bound p_lo on P[M(D) in S] and an upper one p_hi on
P[M(D') in S], gives eps_lb = ln((p_lo - delta) / p_hi): a claim below eps_lb is refuted at the
bounds' confidence. This is the hockey-stick test of DP-Sniper (Bichsel et al., S&P 2021) and of
StatDP, with exact binomial (Clopper-Pearson) bounds instead of normal approximations.

The set S must not be fitted to the samples it is tested on, so each side's releases are split:
the first part chooses S among threshold sets {f >= t} and {f <= t} over one or more scalar
features f of a release (and the order of the pair), by the bound each is predicted to give on
the second part (from cautious estimates); the second part, fresh samples, measures it.
Exactly one S is tested per audit, so a run of k audits at overall failure probability beta
gives each of its 2k confidence bounds beta / 2k (Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Audit",
    "RejectionSet",
    "audit",
    "bonferroni",
    "choose_set",
    "clopper_pearson",
    "epsilon_lower_bound",
    "features",
]


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """One-sided exact bounds: P[p < lower] <= alpha and P[p > upper] <= alpha."""
    k, n = successes, trials
    lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.isf(alpha, k + 1, n - k))
    return lower, upper


def epsilon_lower_bound(hits_p: int, n_p: int, hits_q: int, n_q: int, *, delta: float, alpha: float) -> float:
    """ln((p_lo - delta) / p_hi); -inf when the data give no evidence (p_lo <= delta)."""
    p_lo, _ = clopper_pearson(hits_p, n_p, alpha)
    _, q_hi = clopper_pearson(hits_q, n_q, alpha)
    return math.log((p_lo - delta) / q_hi) if p_lo > delta else -math.inf


@dataclass(frozen=True)
class RejectionSet:
    """S = {release : feature >= t} (or <= t), tested as P[M(first) in S] vs P[M(second) in S]."""

    feature: str
    upper: bool  # True: feature >= threshold; False: feature <= threshold
    threshold: float
    first: str  # "D" or "D'": the side whose probability should be larger

    def __str__(self) -> str:
        return f"{self.feature} {'>=' if self.upper else '<='} {self.threshold:g} (more likely on {self.first})"

    def hits(self, values: np.ndarray) -> int:
        return int(np.count_nonzero(values >= self.threshold if self.upper else values <= self.threshold))


Features = Mapping[str, np.ndarray]  # feature name -> one value per release


def _candidates(a: np.ndarray, b: np.ndarray, limit: int = 400) -> np.ndarray:
    pooled = np.concatenate([a, b])
    values = np.unique(pooled[~np.isnan(pooled)])
    if len(values) > limit:  # quantiles of the pooled sample are enough to find a good threshold
        values = np.unique(np.quantile(values, np.linspace(0, 1, limit), method="nearest"))
    return values


def _share(values: np.ndarray, thresholds: np.ndarray, upper: bool) -> np.ndarray:
    """Share of `values` in {f >= t} (or {f <= t}) for every t, by binary search; NaN is in neither."""
    known = np.sort(values[~np.isnan(values)])
    if upper:
        inside = len(known) - np.searchsorted(known, thresholds, "left")
    else:
        inside = np.searchsorted(known, thresholds, "right")
    return inside / len(values)


CAUTION = 0.05  # one-sided level of the training estimates that rank the candidate sets


def _lower(hits: np.ndarray, n: int, level: float) -> np.ndarray:
    return np.where(hits > 0, stats.beta.ppf(level, np.maximum(hits, 1), n - hits + 1), 0.0)


def _upper(hits: np.ndarray, n: int, level: float) -> np.ndarray:
    return np.where(hits < n, stats.beta.isf(level, hits + 1, np.maximum(n - hits, 1)), 1.0)


def _bounds(hits_p: np.ndarray, hits_q: np.ndarray, n: int, *, delta: float, alpha: float) -> np.ndarray:
    """epsilon_lower_bound over arrays of hit counts (n trials each side)."""
    p_lo, q_hi = _lower(hits_p, n, alpha), _upper(hits_q, n, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p_lo > delta, np.log(np.maximum(p_lo - delta, 1e-300) / q_hi), -np.inf)


def choose_set(
    d: Features, d_prime: Features, *, delta: float, alpha: float, test_size: int
) -> tuple[RejectionSet, float]:
    """The threshold set whose bound on `test_size` fresh releases per side is predicted best from
    these (training) samples, and that prediction. Ranking by the predicted test bound rather than
    by the training sample's own bound keeps rare events in play: a set with P 0.05 vs 0 is strong
    evidence on thousands of releases, though weak on the few hundred used to find it."""
    best: tuple[RejectionSet, float] | None = None
    for name in d:
        a, b = d[name], d_prime[name]
        t = _candidates(a, b)
        if not len(t):
            continue
        for upper in (True, False):
            n_d, n_d_prime = _share(a, t, upper) * len(a), _share(b, t, upper) * len(b)
            for first, hp, np_, hq, nq in (("D", n_d, len(a), n_d_prime, len(b)),
                                           ("D'", n_d_prime, len(b), n_d, len(a))):
                # cautious training estimates: a set that looks good only by luck in a few
                # hundred releases (a far tail, say) is not worth the test's one shot
                p = _lower(hp, np_, CAUTION)
                q = _upper(hq, nq, CAUTION)
                predicted = _bounds(np.round(p * test_size), np.round(q * test_size), test_size,
                                    delta=delta, alpha=alpha)
                i = int(np.argmax(predicted))
                if best is None or predicted[i] > best[1]:
                    best = (RejectionSet(name, upper, float(t[i]), first), float(predicted[i]))
    if best is None:  # nothing to choose from: any set; it will show no evidence
        name = next(iter(d))
        best = (RejectionSet(name, True, 0.0, "D"), -math.inf)
    return best


@dataclass(frozen=True)
class Audit:
    claimed_epsilon: float
    claimed_delta: float
    epsilon_lb: float
    rejection_set: RejectionSet
    p_first: float  # empirical P[M(first) in S] on the test samples
    p_second: float
    releases_per_side: int

    def __str__(self) -> str:
        return (
            f"claimed eps {self.claimed_epsilon:g} (delta {self.claimed_delta:g}): eps_lb {self.epsilon_lb:.3f} "
            f"from S = {self.rejection_set}, P = {self.p_first:.4f} vs {self.p_second:.4f}, "
            f"{self.releases_per_side} releases per side"
        )


def _split(features: Features, at: int) -> tuple[Features, Features]:
    return {k: v[:at] for k, v in features.items()}, {k: v[at:] for k, v in features.items()}


def audit(
    d: Features,
    d_prime: Features,
    *,
    claimed_epsilon: float,
    claimed_delta: float,
    alpha: float,
    train_fraction: float = 0.3,
) -> Audit:
    """Choose S on the first `train_fraction` of each side's releases, measure it on the rest."""
    n = min(len(next(iter(d.values()))), len(next(iter(d_prime.values()))))
    cut = int(n * train_fraction)
    train_d, test_d = _split({k: np.asarray(v[:n], dtype=float) for k, v in d.items()}, cut)
    train_q, test_q = _split({k: np.asarray(v[:n], dtype=float) for k, v in d_prime.items()}, cut)
    chosen, _ = choose_set(train_d, train_q, delta=claimed_delta, alpha=alpha, test_size=n - cut)
    first, second = (test_d, test_q) if chosen.first == "D" else (test_q, test_d)
    hp, hq = chosen.hits(first[chosen.feature]), chosen.hits(second[chosen.feature])
    m = n - cut
    bound = epsilon_lower_bound(hp, m, hq, m, delta=claimed_delta, alpha=alpha)
    return Audit(claimed_epsilon, claimed_delta, bound, chosen, hp / m, hq / m, n)


def bonferroni(failure: float, audits: int) -> float:
    """Per-bound level: two confidence bounds per audit share the run's failure probability."""
    return failure / (2 * audits)


def features(rows: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Releases as feature dicts -> one array per feature."""
    return {name: np.array([r[name] for r in rows], dtype=float) for name in rows[0]}
