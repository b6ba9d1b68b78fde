"""Ordered schema migrations. An existing database is upgraded step by step at start-up;
adding a change means appending one function to MIGRATIONS.

Step 1 builds the current schema, so on a new database later steps find their change made
already: each must check before it changes anything.
"""

from __future__ import annotations

import json

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


def _v7_amendments(conn: Connection) -> None:
    """Amendments widen a scope up to the requested one, the history is searched by decision
    date, a suspended developer is told why: three columns, filled in from the audit log."""
    have = {t: {c["name"] for c in inspect(conn).get_columns(t)} for t in ("agreements", "licences")}
    for table, name in (("agreements", "decided_at"), ("agreements", "requested_datasets"),
                        ("licences", "status_reason")):
        if name not in have[table]:
            column = schema.metadata.tables[table].c[name]
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {column.type.compile(conn.dialect)}"))
    next(i for i in schema.agreements.indexes if i.name == "agreements_decided").create(conn, checkfirst=True)
    _backfill_decisions(conn)


def _backfill_decisions(conn: Connection) -> None:
    """What the new columns would have held, read from the events that recorded it (in chain
    order, so the last decision wins); a row without such an event keeps what it has."""
    events = schema.audit
    agreements, licences = schema.agreements, schema.licences
    decisions = ("agreement.requested", "agreement.approved", "agreement.rejected", "agreement.revoked")
    for event in conn.execute(select(events.c.action, events.c.agreement_id, events.c.ts, events.c.details)
                              .where(events.c.action.in_(decisions)).order_by(events.c.seq)).all():
        details = json.loads(event.details)
        if event.action == "agreement.requested":
            values = {"requested_datasets": json.dumps(details.get("datasets"), sort_keys=True)}
        else:
            values = {"decided_at": event.ts}
        conn.execute(update(agreements).where(agreements.c.id == event.agreement_id).values(**values))
    conn.execute(update(agreements).where(agreements.c.requested_datasets.is_(None))
                 .values(requested_datasets=agreements.c.datasets))
    for event in conn.execute(select(events.c.details).where(events.c.action == "licence.suspended")
                              .order_by(events.c.seq)).all():
        details = json.loads(event.details)
        conn.execute(update(licences).where(licences.c.id == details.get("licence_id"))
                     .values(status_reason=details.get("reason")))


def _v8_stewards(conn: Connection) -> None:
    """Data stewards: an organisation per account, each private dataset's part of an agreement,
    and which parts a reservation was charged to. Agreements made before have no parts: the
    operator's decision stands for them, as for an owner without a steward."""
    for table, name in (("users", "organisation"), ("ledger", "datasets")):
        if name not in {c["name"] for c in inspect(conn).get_columns(table)}:
            column = schema.metadata.tables[table].c[name]
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {column.type.compile(conn.dialect)}"))
    schema.dataset_grants.create(conn, checkfirst=True)


def _v9_steward_output_rules(conn: Connection) -> None:
    """A steward's own output rules for their dataset's part (a larger minimum count, a coarser
    rounding); parts decided before have none."""
    have = {c["name"] for c in inspect(conn).get_columns("dataset_grants")}
    for name in ("min_count", "round_to"):
        if name not in have:
            column = schema.dataset_grants.c[name]
            conn.execute(text(f"ALTER TABLE dataset_grants ADD COLUMN {name} {column.type.compile(conn.dialect)}"))


MIGRATIONS = (
    _v1_initial,
    _v2_audit_job_index,
    _v3_audit_checkpoints,
    _v4_job_leases,
    _v5_console_sessions,
    _v6_job_contribution,
    _v7_amendments,
    _v8_stewards,
    _v9_steward_output_rules,
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
