"""Ordered schema migrations. An existing database is upgraded step by step at start-up;
adding a change means appending one function to MIGRATIONS.

Step 1 builds the current schema, so on a new database later steps find their change made
already: each must check before it changes anything.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, inspect, select, text, update

from sandbox.store import schema

GENESIS = "0" * 64


def _v1_initial(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[t for t in schema.metadata.sorted_tables if t.name != "schema_version"])
    conn.execute(insert(schema.audit_head).values(id=1, seq=0, hash=GENESIS))


def _v2_audit_job_index(conn: Connection) -> None:
    """An event's page lists the other events of its job."""
    next(i for i in schema.audit.indexes if i.name == "audit_job").create(conn, checkfirst=True)


def _v3_audit_checkpoints(conn: Connection) -> None:
    """Signed checkpoints of the audit head."""
    schema.audit_checkpoints.create(conn, checkfirst=True)


def _v4_job_leases(conn: Connection) -> None:
    """Jobs are owned by a server process under a lease (several processes share a database)."""
    have = {c["name"] for c in inspect(conn).get_columns("jobs")}
    for name in ("owner", "lease_until"):
        if name not in have:
            column = schema.jobs.c[name]
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {column.type.compile(conn.dialect)}"))
    next(i for i in schema.jobs.indexes if i.name == "jobs_active").create(conn, checkfirst=True)


def _v5_console_sessions(conn: Connection) -> None:
    """Server-side console sessions (the cookie no longer carries the API token)."""
    schema.console_sessions.create(conn, checkfirst=True)


def _v6_job_contribution(conn: Connection) -> None:
    """A job records the contribution bounds it asked for (per-query max_rows, clamps)."""
    if "contribution" not in {c["name"] for c in inspect(conn).get_columns("jobs")}:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN contribution TEXT"))


MIGRATIONS = (
    _v1_initial,
    _v2_audit_job_index,
    _v3_audit_checkpoints,
    _v4_job_leases,
    _v5_console_sessions,
    _v6_job_contribution,
)


# Any constant: the key of the PostgreSQL advisory lock that admits one migrator at a time.
_MIGRATION_LOCK = 0x5A4D_B0C5


def migrate(conn: Connection) -> int:
    """Bring the database in `conn` (a write transaction) to the latest version."""
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
