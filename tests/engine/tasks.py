"""Tasks for the engine tests, in a module of their own so spawned workers can import them.

They hand raw SQL straight to the locked connection: no compiler stands between these tests
and DuckDB, so what they show is the lock-down itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import duckdb

from sandbox.errors import InvalidParameter

_hoard: list[bytearray] = []


def run_raw_sql(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    """Raw SQL into the locked connection."""
    return con.execute(sql).fetchall()


def refusal(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """The class of the error DuckDB refuses `sql` with, or None if it ran (test-only: the
    pool never lets an engine error's type or text out on its own)."""
    try:
        con.execute(sql).fetchall()
    except duckdb.Error as exc:
        return type(exc).__name__
    return None


def echo(con: duckdb.DuckDBPyConnection, payload: Any) -> Any:
    return payload


def worker_pid(con: duckdb.DuckDBPyConnection, payload: Any) -> int:
    return os.getpid()


def announce_then_sleep(con: duckdb.DuckDBPyConnection, payload: tuple[str, float]) -> None:
    """Write this worker's pid where the test can read it, then stay busy."""
    path, seconds = payload
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


def fail_with_secret(con: duckdb.DuckDBPyConnection, secret: str) -> None:
    """An engine error quoting a value, as a cast that fails only on some private row would."""
    con.execute(f"SELECT CAST('{secret}' AS INTEGER)").fetchall()


def refuse_deliberately(con: duckdb.DuckDBPyConnection, payload: Any) -> None:
    raise InvalidParameter("epsilon must be positive. Pass epsilon > 0.", parameter="epsilon")


def settings(con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, str]:
    rows = con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE list_contains(?, name)", [names]
    ).fetchall()
    return dict(rows)


def unpicklable_result(con: duckdb.DuckDBPyConnection, payload: Any) -> Any:
    return lambda: None


def hoard(con: duckdb.DuckDBPyConnection, grow_mb: int) -> int:
    """Grow this worker's address space by `grow_mb` and keep it after the job, as a
    fragmented heap does."""
    _hoard.append(bytearray(grow_mb << 20))
    return os.getpid()
