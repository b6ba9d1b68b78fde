"""Warm connections: the engine's jobs reuse a locked connection per set of attached files, and
no job can leave state on it for the next one.

Why by construction (DESIGN, "Isolation"): only compiler-generated SQL runs on a warm
connection, every statement of it is checked to be one SELECT before any runs
(duckdb_backend.check_statements), the SELECTs use only pure functions from the compiler's
allowlist (nothing that seeds, sets, creates, prepares or attaches), the configuration is locked,
and post-processing runs on a separate connection that holds no data. Here: the state a job
could touch is identical before and after other jobs, and the same connection was reused."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.engine import Engine
from sandbox.engine.duckdb_backend import check_statements
from sandbox.engine.worker import WorkerLimits, WorkerPool
from sandbox.errors import QueryFailed

STATE = [
    "SELECT name, value FROM duckdb_settings() ORDER BY name",
    "SELECT database_name, path, readonly FROM duckdb_databases() ORDER BY database_name",
    "SELECT database_name, schema_name, table_name, estimated_size FROM duckdb_tables() ORDER BY ALL",
    "SELECT database_name, schema_name, view_name FROM duckdb_views() WHERE NOT internal ORDER BY ALL",
    "SELECT count(*), count(*) FILTER (WHERE NOT internal) FROM duckdb_functions()",
    "SELECT sequence_name FROM duckdb_sequences() ORDER BY ALL",
    "SELECT name, value FROM duckdb_variables() ORDER BY ALL",
    "SELECT current_schema(), current_database(), current_setting('search_path')",
    "SELECT count(*) FROM duckdb_temporary_files()",
]
QUERIES = [
    "SELECT district, COUNT(*), AVG(monthly_income) FROM residents GROUP BY district",
    "SELECT sex, MEDIAN(age) FROM residents WHERE age >= 18 GROUP BY sex",
    "SELECT YEAR(month) AS y, SUM(contribution) FROM social_insurance GROUP BY y",
]


def connection_state(con: duckdb.DuckDBPyConnection, _: Any) -> tuple[int, list]:
    """Everything a job could have left behind, and which connection this is."""
    return id(con), [con.execute(sql).fetchall() for sql in STATE]


def test_consecutive_jobs_see_identical_state(demo_catalog: Catalog) -> None:
    with Engine(demo_catalog, workers=1) as engine:
        plans = [engine.explain(sql, epsilon=1.0) for sql in QUERIES]
        attach = {**plans[0].attach, **plans[2].attach}
        before = engine.pool.run(connection_state, None, plans[0].attach, warm=True)
        for plan in plans[:2]:
            engine.execute(plan)
        after = engine.pool.run(connection_state, None, plans[0].attach, warm=True)
        assert after == before  # same connection (id), same state
        other = engine.pool.run(connection_state, None, attach, warm=True)
        assert other[0] != before[0]  # another set of files, another connection
        assert engine.pool.run(connection_state, None, plans[0].attach, warm=True) == before


def test_fresh_jobs_still_get_fresh_databases(demo_catalog: Catalog) -> None:
    with WorkerPool(1, WorkerLimits()) as pool:
        plan = compile_query(QUERIES[0], demo_catalog, epsilon=1.0)
        first = pool.run(connection_state, None, plan.attach)
        second = pool.run(connection_state, None, plan.attach)
        assert first[1] == second[1]


@pytest.mark.parametrize(
    "statement",
    ["SET threads = 1", "CREATE TABLE x AS SELECT 1", "SELECT 1; SELECT 2", "ATTACH ':memory:' AS m", "PRAGMA version"],
)
def test_only_single_selects_run(statement: str, demo_catalog: Catalog) -> None:
    plan = compile_query(QUERIES[0], demo_catalog, epsilon=1.0)
    tampered = type(plan)(**{**plan.__dict__, "aggregate_sql": statement})
    with pytest.raises(QueryFailed) as failed:
        check_statements(duckdb.connect(), tampered)
    assert not failed.value.data_touched


def test_a_reregistered_file_is_attached_afresh(demo_catalog: Catalog, tmp_path) -> None:
    import shutil

    from sandbox.engine.worker import _identity

    source = demo_catalog.get("residents").engine_path
    copy = tmp_path / "residents.duckdb"
    shutil.copy(source, copy)
    before = _identity({"residents": str(copy)})
    copy.unlink()
    shutil.copy(source, copy)
    assert _identity({"residents": str(copy)}) != before
