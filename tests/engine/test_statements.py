"""Compiled statements are parsed once per process and kept (engine/statements.py): the kept
parse runs on any connection, gives what the text gives, and only single SELECTs are kept."""

from __future__ import annotations

import duckdb
import pytest

from sandbox.engine import statements
from sandbox.engine.statements import select_statement
from sandbox.errors import QueryFailed


def test_a_statement_is_parsed_once_and_runs_on_any_connection() -> None:
    sql = "SELECT x * 2 AS y FROM (VALUES (1), (2)) AS t(x) ORDER BY y"
    first, second = duckdb.connect(), duckdb.connect()
    kept = select_statement(first, sql)
    assert select_statement(second, sql) is kept
    assert second.execute(kept).fetchall() == second.execute(sql).fetchall() == [(2,), (4,)]
    assert first.execute(kept).fetchall() == [(2,), (4,)]  # reusable: running it does not use it up


@pytest.mark.parametrize("sql", ["SET threads = 1", "SELECT 1; SELECT 2", "CREATE TABLE x AS SELECT 1"])
def test_only_single_selects_are_kept(sql: str) -> None:
    with pytest.raises(QueryFailed) as failed:
        select_statement(duckdb.connect(), sql)
    assert not failed.value.data_touched
    assert sql not in statements._PARSED


def test_the_cache_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(statements, "_PARSED", {})
    con = duckdb.connect()
    for i in range(statements._KEPT + 5):
        select_statement(con, f"SELECT {i}")
    assert len(statements._PARSED) <= statements._KEPT
