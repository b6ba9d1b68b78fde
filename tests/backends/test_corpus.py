"""Every accepted query of the compiler's corpora gives bit-identical exact aggregates on DuckDB
and on Spark (a real Spark Connect server), or is refused for Spark at compile time with a
message that says what to write instead."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.engine.backend import SparkOptions
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import WorkerLimits
from sandbox.errors import SandboxError, SQLRejected
from tests.backends.conftest import comparable, duckdb_exact, spark_exact
from tests.compiler.cases import load_cases

CORPORA = ("accepted.sql", "typed_accepted.sql", "joins_accepted.sql")
CASES = [pytest.param(case, id=f"{name}: {case.title}") for name in CORPORA for case in load_cases(name)]
# What Spark cannot run with DuckDB's meaning, by construct; every other accepted query must match.
REFUSED_FOR_SPARK = {
    "string function in a filter",  # LOWER
    "text codes against numbers read by TRY_CAST (public keys are all numbers)",
    "text codes in an IN list of numbers",
    "an explicit CAST of text (rendered as TRY_CAST, NULL where it does not convert)",
    "TRY_CAST of text to a date",
}


@pytest.fixture(scope="module")
def locked(demo_catalog: Catalog) -> Any:
    con = open_locked_connection({d.name: d.engine_path for d in demo_catalog.list()}, WorkerLimits())
    yield con
    con.close()


@pytest.mark.parametrize("case", CASES)
def test_same_exact_aggregates(
    case, demo_catalog: Catalog, locked: Any, spark_session: Any, spark_options: SparkOptions
) -> None:
    try:
        plan = compile_query(case.sql, demo_catalog, epsilon=1.0)
    except SandboxError:
        pytest.fail(f"an accepted query is refused by the compiler: {case.sql}")
    if case.title in REFUSED_FOR_SPARK:
        with pytest.raises(SQLRejected) as refused:
            spark_exact(spark_session, spark_options, demo_catalog, plan)
        assert refused.value.fields["rule"] == "spark_dialect"
        assert "runs on Spark" in refused.value.message and refused.value.message.endswith(".")
        return
    expected = duckdb_exact(locked, plan)
    assert comparable(spark_exact(spark_session, spark_options, demo_catalog, plan)) == comparable(expected), case.sql
    assert expected.aggregates or expected.histograms or not plan.needs_aggregate
