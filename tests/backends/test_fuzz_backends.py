"""The fuzzer's queries (tests/fuzz/grammar.py) on the fuzzer's adversarial data (data.py) give
bit-identical exact aggregates on DuckDB and Spark, or are refused for Spark at compile time.

The data is data.py's as the fuzzer makes it (NaN and infinities, integer extremes, text that
looks like numbers and dates, NULLs, dates beyond the years 1 to 9999, which registration stores
as NULL for every backend). `make test` runs FUZZ_SPARK_EXAMPLES (default 200) queries; the
`slow` campaign in `make bench` runs batches of FUZZ_SPARK_CAMPAIGN (default 500) until at least
1,000 more have been compared on both engines (about 60% of generated queries compile and render
for Spark). Figures: tests/output/fuzz-backends.txt.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from sandbox.compiler import compile_query
from sandbox.engine.backend import SparkOptions
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import WorkerLimits
from sandbox.errors import BudgetExceeded, InvalidParameter, SQLRejected
from tests.backends.conftest import comparable, duckdb_exact, spark_exact
from tests.conftest import POLICIES, REPO
from tests.fuzz import data as fuzz_data
from tests.fuzz.grammar import Schema, queries

EXAMPLES = int(os.environ.get("FUZZ_SPARK_EXAMPLES", "200"))
CAMPAIGN = int(os.environ.get("FUZZ_SPARK_CAMPAIGN", "500"))
CAMPAIGN_MIN_COMPARED = 1000
CAMPAIGN_MAX_GENERATED = 6000  # a generator that compiles too little fails the campaign instead of looping
REFUSALS = (SQLRejected, BudgetExceeded, InvalidParameter)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, spark_session: Any, spark_options: SparkOptions):
    catalog = fuzz_data.build_catalog(POLICIES, tmp_path_factory.mktemp("fuzz-backends"))
    locked = open_locked_connection({d.name: d.engine_path for d in catalog.list()}, WorkerLimits(threads=1))
    state = {
        "catalog": catalog,
        "schema": Schema.of(catalog),
        "locked": locked,
        "session": spark_session,
        "options": spark_options,
        "tally": Counter(),
        "started": time.monotonic(),
    }
    yield state
    locked.close()
    _report(state)


def check(world: dict, sql: str) -> None:
    tally = world["tally"]
    tally["generated"] += 1
    try:
        plan = compile_query(sql, world["catalog"], epsilon=1.0)
    except REFUSALS:
        tally["refused by the compiler"] += 1
        return
    try:
        on_spark = spark_exact(world["session"], world["options"], world["catalog"], plan)
    except SQLRejected as refusal:
        assert refusal.fields["rule"] == "spark_dialect" and refusal.message.endswith("."), refusal.message
        tally["refused for Spark"] += 1
        return
    on_duckdb = duckdb_exact(world["locked"], plan)
    assert comparable(on_spark) == comparable(on_duckdb), f"exact aggregates differ\nSQL: {sql}\n{plan.aggregate_sql}"
    tally["compared, identical"] += 1


def _run(world: dict, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def campaign(data: st.DataObject) -> None:
        sql = data.draw(queries(world["schema"]), label="query")
        note(f"SQL: {sql}")
        check(world, sql)

    campaign()


@pytest.mark.timeout(1800)  # ~0.3 s a query on a quiet machine; a busy one is several times slower
def test_generated_queries_agree(world: dict) -> None:
    _run(world, EXAMPLES)
    assert world["tally"]["compared, identical"] >= EXAMPLES // 4, world["tally"]


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_campaign_of_a_thousand(world: dict) -> None:
    tally = world["tally"]
    before, generated = tally["compared, identical"], tally["generated"]
    while tally["compared, identical"] - before < CAMPAIGN_MIN_COMPARED:
        assert tally["generated"] - generated < CAMPAIGN_MAX_GENERATED, tally
        _run(world, CAMPAIGN)


def _report(world: dict) -> None:
    tally = world["tally"]
    seconds = time.monotonic() - world["started"]
    lines = [
        f"DuckDB vs Spark on the fuzzer's queries: {tally['generated']} generated in {seconds:.0f} s",
        f"compared, bit-identical exact aggregates: {tally['compared, identical']}",
        f"refused by the compiler: {tally['refused by the compiler']}; refused for Spark: {tally['refused for Spark']}",
    ]
    report = REPO / "tests" / "output" / "fuzz-backends.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
