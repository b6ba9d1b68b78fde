"""The fuzzer's queries (tests/fuzz/grammar.py) on the fuzzer's adversarial data (data.py) give
bit-identical exact aggregates on DuckDB and Spark, or are refused for Spark at compile time.

The data is data.py's as the fuzzer makes it (NaN and infinities, integer extremes, text that
looks like numbers and dates, NULLs, dates beyond the years 1 to 9999, which registration stores
as NULL for every backend). `make test` generates queries until FUZZ_SPARK_MIN_COMPARED (default
300) have been compared on both engines (about 57% of generated queries compile and render for
Spark); the `slow` campaign in `make bench` compares FUZZ_SPARK_CAMPAIGN (default 1,000) more.
Issue 17 asks for 1,000 in CI: FUZZ_SPARK_MIN_COMPARED=1000 took 577 s on two busy cores (975
compared in 401 s with the artefacts read through temporary views, when it found a rendering bug:
NULL % 0 on DOUBLE, now a dialect test); the whole suite's budget cannot hold it yet. Figures:
tests/output/fuzz-backends.txt.

Spark's cost is a fixed few hundred milliseconds of planning a query (parse, analysis, code
generation, a job), not reading 240 rows, so the queries are generated and compiled on the main
thread and their Spark side runs from FUZZ_SPARK_THREADS (default 4) threads over the one Connect
session, as several workers' queries run on one cluster; each runs exactly as the worker runs it
(`SparkBackend.exact`). DuckDB's side and the comparison stay on the main thread.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.compiler import compile_query
from sandbox.engine.backend import SparkOptions
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.spark_backend import SparkBackend
from sandbox.engine.worker import WorkerLimits
from sandbox.errors import BudgetExceeded, InvalidParameter, SQLRejected
from tests.backends.conftest import comparable, duckdb_exact, spark_job
from tests.conftest import POLICIES, REPO
from tests.fuzz import data as fuzz_data
from tests.fuzz.grammar import Schema, queries

MIN_COMPARED = int(os.environ.get("FUZZ_SPARK_MIN_COMPARED", "300"))
CAMPAIGN = int(os.environ.get("FUZZ_SPARK_CAMPAIGN", "1000"))
THREADS = int(os.environ.get("FUZZ_SPARK_THREADS", "4"))
BATCH = 250  # queries generated at a time: the Spark threads start on the first batch
MAX_GENERATED_PER_COMPARED = 3  # a generator that compiles too little fails instead of looping
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


def _generate(schema: Schema, count: int) -> list[str]:
    """`count` queries from the grammar, hypothesis choosing (a new random seed every run)."""
    drawn: list[str] = []

    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def draw(data: st.DataObject) -> None:
        drawn.append(data.draw(queries(schema), label="query"))

    draw()
    return drawn


def _compare(world: dict, sql: str, plan: Any, on_spark: Future) -> None:
    try:
        spark = on_spark.result()
    except Exception as error:
        raise AssertionError(f"Spark failed ({type(error).__name__})\nSQL: {sql}\n{plan.aggregate_sql}") from error
    on_duckdb = duckdb_exact(world["locked"], plan)
    assert comparable(spark) == comparable(on_duckdb), f"exact aggregates differ\nSQL: {sql}\n{plan.aggregate_sql}"
    world["tally"]["compared, identical"] += 1


def _run(world: dict, min_compared: int) -> None:
    """Generate, compile and render on this thread, run the Spark side from the pool, compare
    here, until `min_compared` more queries are identical on both engines."""
    tally = world["tally"]
    goal, generated = tally["compared, identical"] + min_compared, tally["generated"]
    backend = SparkBackend(world["session"])
    pending: deque[tuple[str, Any, Future]] = deque()
    pool = ThreadPoolExecutor(THREADS, thread_name_prefix="spark-fuzz")
    try:
        while tally["compared, identical"] + len(pending) < goal:
            assert tally["generated"] - generated < MAX_GENERATED_PER_COMPARED * min_compared, tally
            for sql in _generate(world["schema"], min(BATCH, 2 * (goal - tally["compared, identical"] - len(pending)))):
                if tally["compared, identical"] + len(pending) >= goal:
                    break
                tally["generated"] += 1
                try:
                    plan = compile_query(sql, world["catalog"], epsilon=1.0)
                except REFUSALS:
                    tally["refused by the compiler"] += 1
                    continue
                try:
                    job = spark_job(world["options"], world["catalog"], plan)
                except SQLRejected as refusal:
                    assert refusal.fields["rule"] == "spark_dialect" and refusal.message.endswith("."), refusal.message
                    tally["refused for Spark"] += 1
                    continue
                pending.append((sql, plan, pool.submit(backend.exact, plan, job)))
                while pending and (pending[0][2].done() or len(pending) > BATCH):  # a failure shows early
                    _compare(world, *pending.popleft())
        while pending:
            _compare(world, *pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.timeout(1800)  # a busy machine is several times slower than a quiet one
def test_generated_queries_agree(world: dict) -> None:
    _run(world, MIN_COMPARED)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_campaign(world: dict) -> None:
    _run(world, CAMPAIGN)


def _report(world: dict) -> None:
    tally = world["tally"]
    seconds = time.monotonic() - world["started"]
    lines = [
        f"DuckDB vs Spark on the fuzzer's queries: {tally['generated']} generated in {seconds:.0f} s "
        f"(Spark's side from {THREADS} threads over one Connect session)",
        f"compared, bit-identical exact aggregates: {tally['compared, identical']}",
        f"refused by the compiler: {tally['refused by the compiler']}; refused for Spark: {tally['refused for Spark']}",
    ]
    report = REPO / "tests" / "output" / "fuzz-backends.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
