"""A query's worst-case memory is bounded before it reads data (compiler/work.py): a query that
could exceed the job's memory is refused, and one that is accepted fits, even on data made to be
its worst case (every key distinct, every unit at its cap)."""

from __future__ import annotations

import duckdb
import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from sandbox.errors import SQLRejected
from sandbox.policy import Policy

UNITS = 60_000
WORST_CASE = [
    "SELECT k, COUNT(*), SUM(x) FROM t GROUP BY k",  # every private key distinct
    "SELECT t.k, COUNT(*), SUM(u.y) FROM t JOIN u ON t.pid = u.pid GROUP BY t.k",  # join + per-unit cap
    "SELECT g, COUNT(*), SUM(y) FROM u GROUP BY g",  # the max_groups pass over every row
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    root = tmp_path_factory.mktemp("work")
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT i AS pid, 'key-number-' || i AS k, i % 100 AS v, (i * 7) % 100 AS x FROM range({UNITS}) t(i)) "
        f"TO '{root / 't.parquet'}'"
    )
    con.execute(
        f"COPY (SELECT i // 3 AS pid, 'group-' || i AS g, i % 100 AS y FROM range({UNITS * 3}) t(i)) "
        f"TO '{root / 'u.parquet'}'"
    )

    def policy(name: str, columns: dict, max_rows: int, max_groups: int) -> Policy:
        return Policy.model_validate(
            {
                "name": name,
                "title": name,
                "description": "worst-case data for the memory estimate",
                "owner": "tests",
                "domain": "p",
                "source": {"kind": "parquet", "location": str(root / f"{name}.parquet")},
                "privacy_unit": {"column": "pid", "max_rows": max_rows, "max_groups": max_groups},
                "columns": {"pid": {"role": "identifier", "type": "BIGINT"}, **columns},
            }
        )

    catalog = Catalog(root / "sandbox")
    catalog.register(
        policy(
            "t",
            {
                "k": {"role": "dimension", "type": "VARCHAR"},
                "v": {"role": "dimension", "type": "BIGINT", "bounds": [0, 99]},
                "x": {"role": "measure", "type": "BIGINT", "bounds": [0, 100]},
            },
            1,
            1,
        )
    )
    catalog.register(
        policy(
            "u",
            {
                "g": {"role": "dimension", "type": "VARCHAR"},
                "y": {"role": "measure", "type": "BIGINT", "bounds": [0, 100]},
            },
            3,
            2,
        )
    )
    return catalog


def _smallest_accepted(catalog: Catalog, sql: str) -> int:
    for memory_mb in (2**i for i in range(0, 20)):
        try:
            compile_query(sql, catalog, epsilon=1.0, memory_mb=memory_mb)
            return memory_mb
        except SQLRejected as err:
            assert err.fields["rule"] == "bounded_work", err.message
    raise AssertionError("never accepted")


@pytest.mark.parametrize("sql", WORST_CASE)
def test_an_accepted_query_fits_its_memory_even_at_worst(catalog, sql) -> None:
    memory_mb = _smallest_accepted(catalog, sql)
    with pytest.raises(SQLRejected, match="more than the"):
        compile_query(sql, catalog, epsilon=1.0, memory_mb=memory_mb // 2)
    plan = compile_query(sql, catalog, epsilon=1.0, memory_mb=memory_mb)
    con = open_locked_connection(plan.attach, Limits(memory_mb=memory_mb, threads=2))
    try:
        run_plan(con, plan)  # DuckDB, limited to what the compiler planned for, on worst-case data
    finally:
        con.close()


def test_public_keys_bound_the_groups(catalog) -> None:
    """A key with a public key set holds at most that many groups, whatever the data."""
    private = _smallest_accepted(catalog, "SELECT k, COUNT(*) FROM t GROUP BY k")
    bucketed = _smallest_accepted(catalog, "SELECT v // 10 AS b, COUNT(*) FROM t GROUP BY b")
    assert bucketed < private


def test_the_refusal_says_what_to_do(catalog) -> None:
    with pytest.raises(SQLRejected) as info:
        compile_query(WORST_CASE[1], catalog, epsilon=1.0, memory_mb=8)
    message = info.value.message
    assert "joined rows" in message and "size classes" in message and message.endswith("memory limit.")
