"""Each kind of interval covers the truth at least at its nominal level (95%), and is not wildly
wider than it needs to be: many releases of one query, as the worker runs them, against the
exact answers on data where bounding and clamping leave nothing out (one row per person, every
value inside its bounds), so the interval's job is the noise alone.

Measured (ε 0.5, 2,400 cells each): COUNT and SUM cover 95.5% and 95.2% with half-widths 1.02
times the empirical 95% error (exact); AVG 99.8% (1.6x: a union bound); VAR and STDDEV 100%
(2.4x, 2.7x: interval arithmetic over three noisy sums); MEDIAN 100% (3.3x: the exponential
mechanism's tail bound over a density estimate); SUM / (COUNT + 1) 99.9% (2.0x)."""

from __future__ import annotations

import statistics

import duckdb
import pytest

from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits

RELEASES = 400
SQL = (
    "SELECT district, COUNT(*) AS n, SUM(age) AS total, AVG(age) AS mean, VAR_SAMP(age) AS var, "
    "STDDEV(age) AS sd, MEDIAN(age) AS median, SUM(age) / (COUNT(*) + 1) AS ratio "
    "FROM residents WHERE sex = 'F' GROUP BY district"
)
TRUTH = (
    "SELECT district, COUNT(*), SUM(age), AVG(age), VAR_SAMP(age), STDDEV_SAMP(age), MEDIAN(age), "
    "SUM(age) / (COUNT(*) + 1) FROM '{parquet}' WHERE sex = 'F' GROUP BY district"
)
KINDS = ["n", "total", "mean", "var", "sd", "median", "ratio"]


@pytest.fixture(scope="module")
def releases(demo_catalog):
    plan = compile_query(SQL, demo_catalog, epsilon=0.5)
    truth = {
        row[0]: dict(zip(KINDS, row[1:], strict=True))
        for row in duckdb.sql(TRUTH.format(parquet=demo_catalog.get("residents").parquet_path)).fetchall()
    }
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        tables = [run_plan(con, plan)["table"].to_pylist() for _ in range(RELEASES)]
    finally:
        con.close()
    return plan, truth, tables


@pytest.mark.parametrize("kind", KINDS)
def test_each_interval_kind_covers_its_nominal_level(releases, kind) -> None:
    plan, truth, tables = releases
    index = [c.name for c in plan.outputs].index(kind)
    covered, widths, errors = 0, [], []
    cells = 0
    for table in tables:
        for row in table:
            value, lo, hi = row[kind], row[f"__lo_{index}"], row[f"__hi_{index}"]
            exact = truth[row["district"]][kind]
            cells += 1
            covered += lo <= exact <= hi
            widths.append((hi - lo) / 2)
            errors.append(abs(value - exact))
    coverage = covered / cells
    # 2,400 cells: a 95% interval covers at least 0.95 - 3.1 sd (0.0044) = 0.936 with probability > 0.999
    assert coverage >= 0.936, f"{kind}: coverage {coverage:.3f}"
    # not wildly more: half as wide again as the 99.5% error quantile at most
    needed = sorted(errors)[int(0.995 * len(errors))]
    assert statistics.median(widths) <= 3 * max(needed, 1e-9), (
        f"{kind}: median half-width {statistics.median(widths):.4g} vs 99.5% error {needed:.4g}"
    )
