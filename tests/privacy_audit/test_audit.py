"""Empirical privacy audit: does any release betray more than its claimed epsilon?

For each mechanism, the same query is released many times on D and on its neighbour D' (D
without its worst-case unit, see conftest.py), through the worker's execution code, and a
threshold attack (attack.py) turns the two samples into a lower bound eps_lb on the epsilon the
releases actually spend. A correct mechanism must give eps_lb <= its claim; at the bounds'
confidence a larger eps_lb is a proof that the claim is false.

An audit that cannot fail proves nothing, so each run also audits deliberately broken plans,
made here with `dataclasses.replace` (the product has no switch for this): half the noise (a
primitive's epsilon doubled while the claimed epsilon stays) for COUNT and SUM, for MEDIAN a quarter
of it in the fast run and a third in the thorough one, and for private keys a threshold set for a
100x larger delta. Their eps_lb must exceed the claim, in the fast run of `make test` as in the
thorough one (fast runs: half-noise SUM 1.33-1.36, a quarter of the noise MEDIAN 1.74).

The default run (in `make test`) draws 2,000 releases per side (`Case.fast`); `make audit`
(marker `audit`) draws THOROUGH releases per side for tighter bounds. Every bound of a run is Bonferroni-corrected
so the whole run refutes a correct claim by chance with probability <= 1e-6. Missing a broken
plan is a matter of power: simulated with the same attack 3,000 times at FAST, the half-noise
count's eps_lb had mean 1.45 and sd 0.08 (minimum 1.15), 5.8 sd above its claim of 1. The
numbers of each run go to tests/output/privacy-audit*.txt.

Besides the statistics, `test_plans_of_neighbours_are_alike` checks the root of any difference
directly: the noise plan compiled on D and on D' must be the same. Its SPANNING case was a
finding of this audit (a data-dependent l0), fixed in the product and kept here.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.compiler import Plan, compile_query
from tests.privacy_audit.attack import Audit, audit, bonferroni, features
from tests.privacy_audit.sampling import Extract, group_features, single_value

FAILURE = 1e-6
THOROUGH = 20_000
REPORT = Path(__file__).resolve().parents[1] / "output"


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str
    sql: str
    epsilon: float = 1.0
    delta: float | None = None
    extract: Extract = single_value
    broken: str | None = None  # how the plan is broken (None: the product's own plan)
    fast: int = 2_000  # releases per side in the fast run (0: not in it)
    thorough: bool = True  # in the thorough run


PRIVATE_KEYS = functools.partial(group_features, key="region", rare="rare", common="north")

CASES = [
    Case("count", "pums_null", "SELECT COUNT(*) AS v FROM pums_null"),
    Case("sum", "audit_people", "SELECT SUM(income) AS v FROM audit_people"),
    Case("mean", "audit_people", "SELECT AVG(income) AS v FROM audit_people"),
    Case("median", "audit_people", "SELECT MEDIAN(age) AS v FROM audit_people"),
    Case("private-key group-by", "audit_people",
         "SELECT region, COUNT(*) AS n FROM audit_people GROUP BY region", delta=5e-3, extract=PRIVATE_KEYS),
]
# (Private keys with half the noise are not here: on this neighbour only the rare key's listing
# differs, and the threshold, recomputed for the doubled epsilon, still bounds that by delta; the
# released counts of other keys are the same on D and D'.)
BROKEN = [
    dataclasses.replace(CASES[0], name="count, half the noise", broken="epsilon x2"),
    dataclasses.replace(CASES[1], name="sum, half the noise", broken="epsilon x2"),
    # The exponential mechanism's releases tell D from D' less sharply, and a median spends 4/5 of
    # its epsilon on the quantile (1/5 on the count its interval needs): at 2,000 a side a third of
    # the noise gave eps_lb 1.14, too close to its claim of 1; the fast run audits a quarter of the
    # noise instead, and the thorough run a third.
    dataclasses.replace(CASES[3], name="median, a third of the noise", broken="epsilon x3", fast=0),
    dataclasses.replace(CASES[3], name="median, a quarter of the noise", broken="epsilon x4", thorough=False),
    dataclasses.replace(CASES[4], name="private-key group-by, threshold for 100x delta", broken="delta x100"),
]
# A finding of this audit, fixed: when the removed unit was the only one whose rows span two values
# of the grouped dimension, D and D' got different noise plans (constancy was inferred from data;
# it is now a declared, verified policy property).
SPANNING = dataclasses.replace(CASES[4], name="private-key group-by, unit in two regions",
                               dataset="audit_people, unit 0 in two regions")

# One run is either the fast audits or the thorough ones: each run's bounds share FAILURE.
FAST_CASES = [c for c in CASES + BROKEN if c.fast]
ALPHA_FAST = bonferroni(FAILURE, len(FAST_CASES))


def break_plan(plan: Plan, how: str | None) -> Plan:
    """A test-only plan that spends more than it claims; plan.epsilon and plan.delta stay."""
    if how is None:
        return plan
    if how in ("epsilon x2", "epsilon x3", "epsilon x4"):  # a half (third, quarter) of the noise: each epsilon x k
        times = int(how[-1])
        more = tuple(dataclasses.replace(p, epsilon=times * p.epsilon) for p in plan.primitives)
        selection = plan.selection and dataclasses.replace(plan.selection, epsilon=times * plan.selection.epsilon)
        return dataclasses.replace(plan, primitives=more, selection=selection)
    if how == "delta x100":  # a threshold low enough for 100 times the claimed delta
        assert plan.selection is not None
        return dataclasses.replace(plan, selection=dataclasses.replace(plan.selection, delta=100 * plan.delta))
    raise ValueError(how)


def run_audit(case: Case, neighbours, releases, per_side: int, alpha: float) -> tuple[Audit, float]:
    d, d_prime = neighbours[case.dataset]
    plans = [break_plan(compile_query(case.sql, c, epsilon=case.epsilon, delta=case.delta), case.broken)
             for c in (d, d_prime)]
    assert plans[0].epsilon == case.epsilon, "the claim is the compiled plan's"
    start = time.perf_counter()
    pending = [releases.submit(plan, per_side, case.extract) for plan in plans]  # both sides at once
    samples = [features(wait()) for wait in pending]
    result = audit(*samples, claimed_epsilon=plans[0].epsilon, claimed_delta=plans[0].delta, alpha=alpha)
    return result, time.perf_counter() - start


def record(name: str, case: Case, result: Audit, seconds: float) -> None:
    REPORT.mkdir(exist_ok=True)
    with (REPORT / name).open("a") as out:
        out.write(f"{case.name:<48} {result}  [{seconds:.1f} s]\n")


def check(case: Case, result: Audit) -> None:
    if case.broken is None:
        assert result.epsilon_lb <= result.claimed_epsilon, f"{case.name}: the releases refute the claim: {result}"
    else:
        assert result.epsilon_lb > result.claimed_epsilon, f"{case.name}: the audit missed a broken plan: {result}"


@pytest.fixture(scope="module")
def fast_report() -> str:
    (REPORT / "privacy-audit-fast.txt").unlink(missing_ok=True)
    return "privacy-audit-fast.txt"


# (SPANNING is audited statistically in the thorough run; here test_plans_of_neighbours_are_alike
# shows it at no cost.)
@pytest.mark.parametrize("case", FAST_CASES, ids=[c.name for c in FAST_CASES])
def test_audit(case: Case, neighbours, releases, fast_report) -> None:
    result, seconds = run_audit(case, neighbours, releases, case.fast, ALPHA_FAST)
    record(fast_report, case, result, seconds)
    check(case, result)


@pytest.fixture(scope="module")
def thorough_report() -> str:
    (REPORT / "privacy-audit.txt").unlink(missing_ok=True)
    return "privacy-audit.txt"


THOROUGH_CASES = [c for c in [*CASES, *BROKEN, SPANNING] if c.thorough]
THOROUGH_IDS = [c.name for c in THOROUGH_CASES]
ALPHA_THOROUGH = bonferroni(FAILURE, len(THOROUGH_CASES))


@pytest.mark.audit
@pytest.mark.parametrize("case", THOROUGH_CASES, ids=THOROUGH_IDS)
def test_audit_thorough(case: Case, neighbours, releases, thorough_report) -> None:
    result, seconds = run_audit(case, neighbours, releases, THOROUGH, ALPHA_THOROUGH)
    record(thorough_report, case, result, seconds)
    check(case, result)


@pytest.mark.parametrize("case", [*CASES, SPANNING],
                         ids=[c.name for c in CASES + [SPANNING]])
def test_plans_of_neighbours_are_alike(case: Case, neighbours) -> None:
    """The noise a query gets must not depend on the data: compiled on D and on D', the
    primitives (sensitivity, epsilon, scale) and the selection (scale, threshold) are the same.
    Otherwise the plan, which `explain` shows for free, already tells D from D'."""
    d, d_prime = (compile_query(case.sql, c, epsilon=case.epsilon, delta=case.delta) for c in neighbours[case.dataset])
    assert (d.primitives, d.selection) == (d_prime.primitives, d_prime.selection)
