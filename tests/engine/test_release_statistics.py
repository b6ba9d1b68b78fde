"""Many releases of one query on fixed data (through the compiled plan and the worker's
execution code, in-process for speed): the noise has the declared scale and the 95% intervals
cover the exact answer about 95% of the time. Thresholds are set for a false-failure rate
<= 1e-6."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.release import Release
from sandbox.engine.worker import WorkerLimits
from tests.support.exact import exact_primitives

RELEASES = 300
FAILURE = 1e-6


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


@pytest.mark.parametrize("sql,column,primitive", [
    ("SELECT COUNT(*) AS n FROM pums_null", "n", "p0"),
    ("SELECT SUM(income) AS s FROM pums_null", "s", "p0"),
    ("SELECT COUNT(DISTINCT pid) AS u FROM pums_null WHERE age > 40", "u", "p0"),
])
def test_noise_scale_and_interval_coverage(demo_catalog, sql, column, primitive) -> None:
    plan = compile_query(sql, demo_catalog, epsilon=1.0)
    p = plan.primitive(primitive)
    truth = exact_primitives(plan)[()][primitive] * p.step
    releases = _releases(plan, RELEASES)
    errors = [r.table[column][0] - truth for r in releases]
    # spread: a chi-square goodness-of-fit of the errors (in grid units) against the discrete
    # Laplace pmf of the declared scale, P(k) = (1-q)/(1+q) q^|k|, tails pooled
    q = math.exp(-1 / p.scale)
    pmf = lambda k: (1 - q) / (1 + q) * q ** abs(k)  # noqa: E731
    width = 0
    while RELEASES * pmf(width + 1) >= 5:
        width += 1
    observed = [0] * (2 * width + 3)
    for e in errors:
        k = round(e / p.step)
        observed[0 if k < -width else -1 if k > width else k + width + 1] += 1
    tail = q ** (width + 1) / (1 + q)
    expected = [tail] + [pmf(k) for k in range(-width, width + 1)] + [tail]
    assert stats.chisquare(observed, [RELEASES * e for e in expected]).pvalue > FAILURE
    covered = sum(abs(e) <= r.accuracy[column][0] for e, r in zip(errors, releases, strict=True))
    low, high = _coverage_bounds(RELEASES)
    assert low <= covered <= high + 1, f"{covered}/{RELEASES} intervals covered the truth"


def test_avg_is_centred_and_its_interval_is_conservative(demo_catalog) -> None:
    """AVG = centre + noisy SUM(x - centre) / noisy COUNT(x): unbiased to first order, and its
    union-bound interval covers the truth at least 95% of the time."""
    plan = compile_query("SELECT AVG(income) AS m FROM pums_null", demo_catalog, epsilon=1.0)
    total, count = plan.primitives
    assert total.center * total.step == 250_000  # the middle of [0, 500000]
    values = exact_primitives(plan)[()]
    truth = 250_000 + values[total.id] * total.step / values[count.id]
    releases = _releases(plan, RELEASES)
    errors = [r.table["m"][0] - truth for r in releases]
    spread = stats.tstd(errors)
    assert abs(stats.tmean(errors)) < stats.norm.isf(FAILURE / 2) * spread / math.sqrt(RELEASES)
    covered = sum(abs(e) <= r.accuracy["m"][0] for e, r in zip(errors, releases, strict=True))
    assert covered >= _coverage_bounds(RELEASES)[0], f"{covered}/{RELEASES} intervals covered the truth"


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


def test_sum_rebuilt_from_a_centred_sum_has_exact_coverage(demo_catalog) -> None:
    """COUNT(*) and SUM(x) of a non-null x: SUM = centred sum + c x count. Its interval is the
    exact 95% quantile of that combined noise (narrower than SUM(x) alone would get at the same
    epsilon share), and covers the truth 95% of the time."""
    from sandbox import privacy

    plan = compile_query("SELECT COUNT(*) AS n, SUM(monthly_income) AS s FROM residents", demo_catalog, epsilon=1.0)
    count, total = plan.primitives
    assert total.center * total.step == 50_000 and plan.outputs[1].primitives == (total.id, count.id)
    values = exact_primitives(plan)[()]
    truth = (values[total.id] + total.center * values[count.id]) * total.step
    releases = _releases(plan, RELEASES)
    width = releases[0].accuracy["s"][0]
    assert width == privacy.combined_half_width(total.scale, count.scale, total.center) * total.step
    assert width < 0.8 * privacy.half_width(2 * total.scale) * total.step  # the uncentred sum's
    errors = [r.table["s"][0] - truth for r in releases]
    covered = sum(abs(e) <= width for e in errors)
    low, high = _coverage_bounds(RELEASES)
    assert low <= covered <= high + 1, f"{covered}/{RELEASES} intervals covered the truth"
    spread = stats.tstd(errors)
    assert abs(stats.tmean(errors)) < stats.norm.isf(FAILURE / 2) * spread / math.sqrt(RELEASES)
