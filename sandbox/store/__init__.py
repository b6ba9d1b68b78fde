"""The metadata store: SQLite file by default, PostgreSQL when given a URL.

Every state change happens inside `Store.transaction()`; on SQLite that transaction starts with
BEGIN IMMEDIATE (one writer at a time, WAL readers unaffected), on PostgreSQL compare-and-set
UPDATEs and row locks make concurrent writers safe. `Store.snapshot()` reads several tables as
of one moment (REPEATABLE READ on PostgreSQL), which a cross-check of two tables needs.

A SQLite database and its WAL are created 0600 in a 0700 directory (sandbox/private_files.py):
they hold every developer's SQL, every release and the audit log.

Service functions take a `Database`: a `Store`, and they open their own transaction (`writing`)
or read (`reading`); or a `Connection`, and they run inside the caller's transaction (several
actions in one transaction, as a set-up script or a test does).

`journal`, when given, is handed to every write transaction (`conn.info[JOURNAL]`): the audit
log records each event it appends there too, outside the database (sandbox/audit/journal.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine, create_engine, event

from sandbox.private_files import private_file
from sandbox.store import schema
from sandbox.store.migrations import migrate

__all__ = ["JOURNAL", "Database", "Store", "now", "reading", "schema", "writing"]

JOURNAL = "sandbox.audit.journal"  # key of the audit journal in a write connection's `info`


def now(plus_seconds: float = 0.0) -> str:
    """Fixed-width ISO-8601 UTC, microseconds: sorts as text, hashes the same everywhere."""
    return (datetime.now(UTC) + timedelta(seconds=plus_seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _url(database: str | Path) -> str:
    text = str(database)
    if "://" in text:
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            return "postgresql+psycopg://" + text.split("://", 1)[1]
        return text
    return f"sqlite:///{Path(text).resolve()}"


class Store:
    def __init__(self, database: str | Path, *, journal: Any = None) -> None:
        self.url = _url(database)
        self.is_sqlite = self.url.startswith("sqlite")
        self.journal = journal
        if self.is_sqlite:
            path = self.url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                private_file(Path(path))  # SQLite gives its -wal and -shm files the same mode
            self.engine: Engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        with self.transaction() as conn:
            migrate(conn)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(sandbox_write=True)  # SQLite: BEGIN IMMEDIATE (see _sqlite_begin)
            conn.info[JOURNAL] = self.journal
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction that sees one moment of every table (SQLite's read transaction
        is a WAL snapshot already; PostgreSQL's default READ COMMITTED is not)."""
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=60000")
    for attempt in range(100):
        try:  # switching a new file to WAL takes an exclusive lock; SQLite may refuse it at once
            cursor.execute("PRAGMA journal_mode=WAL")  # (no busy handler) when servers open it together
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front (no lock upgrade, so no deadlock between two
    writers); readers start a deferred transaction, a WAL snapshot that never blocks a writer."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sandbox_write") else "BEGIN")


Database: TypeAlias = "Store | Connection"


@contextmanager
def writing(db: Database) -> Iterator[Connection]:
    """A write transaction of its own for a Store; the caller's transaction for a Connection."""
    if isinstance(db, Store):
        with db.transaction() as conn:
            yield conn
    else:
        yield db


@contextmanager
def reading(db: Database) -> Iterator[Connection]:
    if isinstance(db, Store):
        with db.read() as conn:
            yield conn
    else:
        yield db
