"""Many releases of one query on fixed data, through the worker's own execution code: the noise
has the declared scale and shape, and the 95% intervals cover the exact answer as often as the
declared noise says they should: no less, and no more. Every check has a false-failure rate
<= 1e-6.

A check that passes whatever the noise is proves nothing, so deliberately broken plans (the
noise drawn at a scale 20% smaller or 20% larger than the plan declares, made here with
`dataclasses.replace`) must be caught. The scale check carries that: at RELEASES draws the mean
absolute error of a 20% wrong scale lies about 9 standard errors from the declared one, against a
threshold of 4.9, so a broken plan slips through with probability below 1e-6 too.

Releases are drawn by the privacy audit's sampler (tests/privacy_audit/sampling.py): `run_plan` on
locked-down DuckDB connections in a pool of processes, the exact aggregates replayed after the
first runs (they are deterministic), the noise drawn afresh by OpenDP every time.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import pytest
from scipy import stats

from sandbox.compiler import Plan, compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.release import Release
from sandbox.engine.worker import WorkerLimits
from tests.privacy_audit.sampling import Sampler, sampler, single_value
from tests.support.exact import exact_primitives

RELEASES = 3000  # drawn by the sampler
IN_PROCESS = 300  # releases built in this process, where a test needs each release's own interval
FAILURE = 1e-6
Z = stats.norm.isf(FAILURE / 2)  # two-sided threshold of a z statistic


@pytest.fixture(scope="module")
def draws() -> Sampler:
    with sampler() as started:
        yield started


def _releases(plan, n: int) -> list[Release]:
    out = []
    for _ in range(n):
        con = open_locked_connection(plan.attach, WorkerLimits())
        try:
            out.append(Release.from_worker(plan, run_plan(con, plan)["table"], 0.0))
        finally:
            con.close()
    return out


def _coverage_bounds(n: int, p: float = 0.95) -> tuple[int, int]:
    low = int(stats.binom.ppf(FAILURE / 2, n, p))
    high = int(stats.binom.isf(FAILURE / 2, n, p))
    return low, high


class DiscreteLaplace:
    """The declared noise in grid units: P(k) = (1 - q) / (1 + q) q^|k|, q = exp(-1 / scale)."""

    def __init__(self, scale: float) -> None:
        self.a = -math.expm1(-1 / scale)  # 1 - q, without cancellation at large scales
        self.q = 1 - self.a

    def cdf(self, k: int) -> float:
        return 1 - self.q ** (k + 1) / (1 + self.q) if k >= 0 else self.q ** (-k) / (1 + self.q)

    def quantile(self, p: float) -> int:
        """The smallest k with cdf(k) >= p."""
        if p >= 1 / (1 + self.q):
            return max(0, math.ceil(math.log((1 - p) * (1 + self.q)) / math.log(self.q) - 1 - 1e-9))
        return -math.floor(math.log(p * (1 + self.q)) / math.log(self.q) + 1e-9)

    def abs_moments(self) -> tuple[float, float]:
        """Mean and variance of |k|."""
        mean = 2 * self.q / (self.a * (1 + self.q))
        square = 2 * self.q / self.a**2
        return mean, square - mean**2


def noise_problems(errors: list[int], scale: float, half_width: float, n_bins: int = 20) -> list[str]:
    """What is wrong with these errors (in grid units) as draws of the declared noise, whose 95%
    half-width is `half_width` grid units; [] if nothing is."""
    noise, n = DiscreteLaplace(scale), len(errors)
    problems = []
    mean, variance = noise.abs_moments()
    z = (sum(abs(e) for e in errors) / n - mean) / math.sqrt(variance / n)
    if abs(z) > Z:
        problems.append(f"scale: mean |error| is {z:+.1f} standard errors from the declared scale's")
    # shape: bins of about equal declared probability, pooled until each expects >= 5 draws
    edges = sorted({noise.quantile(i / n_bins) for i in range(1, n_bins)})
    bins = list(zip([-math.inf, *edges], [*edges, math.inf], strict=True))
    observed = [sum(1 for e in errors if lo < e <= hi) for lo, hi in bins]
    expected = [n * ((noise.cdf(hi) if hi != math.inf else 1) - (noise.cdf(lo) if lo != -math.inf else 0))
                for lo, hi in bins]
    pooled_o, pooled_e = [0], [0.0]
    for o, e in zip(observed, expected, strict=True):
        if pooled_e[-1] >= 5:
            pooled_o.append(0)
            pooled_e.append(0.0)
        pooled_o[-1] += o
        pooled_e[-1] += e
    if len(pooled_o) >= 3 and stats.chisquare(pooled_o, pooled_e).pvalue < FAILURE:
        problems.append(f"shape: chi-square over {len(pooled_o)} bins rejects the declared distribution")
    covers = 1 - 2 * noise.q ** (math.floor(half_width + 1e-9) + 1) / (1 + noise.q)
    covered = sum(abs(e) <= half_width + 1e-9 for e in errors)
    low, high = int(stats.binom.ppf(FAILURE / 2, n, covers)), int(stats.binom.isf(FAILURE / 2, n, covers))
    if not low <= covered <= high:
        problems.append(f"coverage: {covered}/{n} intervals covered the truth; the declared noise says "
                        f"{covers:.4f} ({low}..{high})")
    return problems


def with_noise_scaled(plan: Plan, factor: float) -> Plan:
    """A test-only plan whose noise is drawn at `factor` times the scale it declares (every
    primitive's epsilon divided by `factor`; the declared scales and half-widths stay)."""
    return dataclasses.replace(plan, primitives=tuple(
        dataclasses.replace(p, epsilon=p.epsilon / factor) for p in plan.primitives))


CASES = {
    "count": "SELECT COUNT(*) AS n FROM pums_null",
    "sum": "SELECT SUM(income) AS s FROM pums_null",
    "distinct units": "SELECT COUNT(DISTINCT pid) AS u FROM pums_null WHERE age > 40",
}


def errors_of(catalog, case: str, draws: Sampler, factor: float = 1.0) -> tuple[list[int], float, float]:
    """RELEASES errors in grid units, the declared scale and the declared half-width in grid units."""
    plan = compile_query(CASES[case], catalog, epsilon=1.0)
    (primitive,) = plan.primitives
    (output,) = plan.outputs
    truth = exact_primitives(plan)[()][primitive.id]
    released = draws.releases(with_noise_scaled(plan, factor), RELEASES, single_value)
    errors = [round(r["value"] / primitive.step) - truth for r in released]
    return errors, primitive.scale, output.half_width / primitive.step


@pytest.mark.parametrize("case", CASES)
def test_noise_has_the_declared_scale_shape_and_coverage(demo_catalog, draws, case: str) -> None:
    errors, scale, half_width = errors_of(demo_catalog, case, draws)
    assert noise_problems(errors, scale, half_width) == []


@pytest.mark.parametrize("factor", [0.8, 1.2], ids=["20% less noise", "20% more noise"])
@pytest.mark.parametrize("case", ["count", "sum"])
def test_a_plan_with_the_wrong_noise_is_caught(demo_catalog, draws, case: str, factor: float) -> None:
    errors, scale, half_width = errors_of(demo_catalog, case, draws, factor)
    problems = noise_problems(errors, scale, half_width)
    assert any(p.startswith("scale:") for p in problems), problems


def test_avg_is_centred_and_its_interval_is_conservative(demo_catalog) -> None:
    """AVG = centre + noisy SUM(x - centre) / noisy COUNT(x): unbiased to first order, and its
    union-bound interval covers the truth at least 95% of the time."""
    plan = compile_query("SELECT AVG(income) AS m FROM pums_null", demo_catalog, epsilon=1.0)
    total, count = plan.primitives
    assert total.center * total.step == 250_000  # the middle of [0, 500000]
    values = exact_primitives(plan)[()]
    truth = 250_000 + values[total.id] * total.step / values[count.id]
    releases = _releases(plan, IN_PROCESS)
    errors = [r.table["m"][0] - truth for r in releases]
    spread = stats.tstd(errors)
    assert abs(stats.tmean(errors)) < Z * spread / math.sqrt(IN_PROCESS)
    covered = sum(abs(e) <= r.accuracy["m"][0] for e, r in zip(errors, releases, strict=True))
    assert covered >= _coverage_bounds(IN_PROCESS)[0], f"{covered}/{IN_PROCESS} intervals covered the truth"


def test_a_suppressed_group_releases_nulls_not_bounds(demo_catalog) -> None:
    """Suppression blanks the primitives; formulas over them must stay NULL (DuckDB's GREATEST
    skips NULLs: a clamp would have released the lower bound)."""
    from sandbox.compiler.plan import OutputRules

    plan = compile_query(
        "SELECT COUNT(*) AS n, AVG(income) AS m, STDDEV(income) AS sd FROM pums_null",
        demo_catalog, epsilon=1.0, rules=OutputRules(min_count=10**9),
    )
    (release,) = _releases(plan, 1)
    assert release.suppressed == [True]
    assert release.table.row(0) == (None, None, None)
    assert release.lower.row(0) == (None, None, None) and release.upper.row(0) == (None, None, None)


def test_sum_rebuilt_from_a_centred_sum_has_exact_coverage(demo_catalog, draws) -> None:
    """COUNT(*) and SUM(x) of a non-null x: SUM = centred sum + c x count. Its interval is the
    exact 95% quantile of that combined noise (narrower than SUM(x) alone would get at the same
    epsilon share), and covers the truth 95% of the time."""
    from sandbox import privacy

    plan = compile_query("SELECT COUNT(*) AS n, SUM(monthly_income) AS s FROM residents", demo_catalog, epsilon=1.0)
    count, total = plan.primitives
    assert total.center * total.step == 100_000 and plan.outputs[1].primitives == (total.id, count.id)
    values = exact_primitives(plan)[()]
    truth = (values[total.id] + total.center * values[count.id]) * total.step
    width = _releases(plan, 1)[0].accuracy["s"][0]
    assert width == privacy.combined_half_width(total.scale, count.scale, total.center) * total.step
    assert width < 0.8 * privacy.half_width(2 * total.scale) * total.step  # the uncentred sum's
    errors = [r["value"] - truth for r in draws.releases(plan, RELEASES, partial(single_value, column="s"))]
    covered = sum(abs(e) <= width for e in errors)
    low, high = _coverage_bounds(RELEASES)
    assert low <= covered <= high + 1, f"{covered}/{RELEASES} intervals covered the truth"
    spread = stats.tstd(errors)
    assert abs(stats.tmean(errors)) < Z * spread / math.sqrt(RELEASES)
