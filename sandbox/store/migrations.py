"""Ordered schema migrations. An existing database is upgraded step by step at start-up;
adding a change means appending one function to MIGRATIONS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, inspect, select, text, update

from sandbox.store import schema

if TYPE_CHECKING:
    from sandbox.store import Store

GENESIS = "0" * 64


def _v1_initial(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[t for t in schema.metadata.sorted_tables if t.name != "schema_version"])
    conn.execute(insert(schema.audit_head).values(id=1, seq=0, hash=GENESIS))


def _v2_audit_job_index(conn: Connection) -> None:
    """An event's page lists the other events of its job. (v1 builds the current schema, so a
    new database has the index already: later steps must check before they change.)"""
    next(i for i in schema.audit.indexes if i.name == "audit_job").create(conn, checkfirst=True)


def _v3_audit_checkpoints(conn: Connection) -> None:
    """Signed checkpoints of the audit head (a new database has the table from v1 already)."""
    schema.audit_checkpoints.create(conn, checkfirst=True)


MIGRATIONS = (_v1_initial, _v2_audit_job_index, _v3_audit_checkpoints)


# Any constant: the key of the PostgreSQL advisory lock that admits one migrator at a time.
_MIGRATION_LOCK = 0x5A4D_B0C5


def migrate(store: Store) -> int:
    with store.transaction() as conn:
        if conn.dialect.name == "postgresql":
            # Servers starting together on a new database would all find no schema_version table
            # and race to create it; the loser's CREATE fails. SQLite's BEGIN IMMEDIATE already
            # admits one writer; here a transaction-scoped advisory lock does, and the next one in
            # sees the schema the first one committed.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        if not inspect(conn).has_table("schema_version"):
            schema.schema_version.create(conn)
            conn.execute(insert(schema.schema_version).values(version=0))
        current = conn.execute(select(schema.schema_version.c.version).with_for_update()).scalar_one()
        for version, step in enumerate(MIGRATIONS, start=1):
            if version > current:
                step(conn)
                conn.execute(update(schema.schema_version).values(version=version))
        return len(MIGRATIONS)
