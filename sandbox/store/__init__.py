"""The metadata store: SQLite file by default, PostgreSQL when given a URL.

Every state change happens inside `Store.transaction()`; on SQLite that transaction starts with
BEGIN IMMEDIATE (one writer at a time, WAL readers unaffected), on PostgreSQL compare-and-set
UPDATEs and row locks make concurrent writers safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event

from sandbox.store import schema
from sandbox.store.migrations import migrate

__all__ = ["Store", "now", "schema"]


def now() -> str:
    """Fixed-width ISO-8601 UTC, microseconds: sorts as text, hashes the same everywhere."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _url(database: str | Path) -> str:
    text = str(database)
    if "://" in text:
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            return "postgresql+psycopg://" + text.split("://", 1)[1]
        return text
    return f"sqlite:///{Path(text).resolve()}"


class Store:
    def __init__(self, database: str | Path) -> None:
        self.url = _url(database)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        migrate(self)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(sandbox_write=True)  # SQLite: BEGIN IMMEDIATE (see _sqlite_begin)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front (no lock upgrade, so no deadlock between two
    writers); readers start a deferred transaction, a WAL snapshot that never blocks a writer."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sandbox_write") else "BEGIN")
