"""The metadata store's migrations, on SQLite and PostgreSQL: a new database is created at the
latest version, an existing one is upgraded step by step (and only once), a failed step leaves
nothing half-done, and servers opening the same new database at the same time do not break it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, func, inspect, select, text

from sandbox import audit
from sandbox.store import Store, migrations, schema
from tests.service.conftest import seed

LATEST = len(migrations.MIGRATIONS)


def versions(store: Store) -> list[int]:
    with store.read() as conn:
        return list(conn.execute(select(schema.schema_version.c.version)).scalars())


def snapshot(store: Store) -> dict[str, Any]:
    """Everything a migration could change: tables, columns, indexes, versions, row counts, head."""
    with store.read() as conn:
        inspector = inspect(conn)
        tables = sorted(inspector.get_table_names())
        return {
            "tables": tables,
            "columns": {t: [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t)]
                        for t in tables},
            "indexes": {t: sorted(i["name"] for i in inspector.get_indexes(t)) for t in tables},
            "versions": list(conn.execute(select(schema.schema_version.c.version)).scalars()),
            "rows": {t: conn.execute(select(func.count()).select_from(schema.metadata.tables[t])).scalar_one()
                     for t in tables if t in schema.metadata.tables},
            "head": tuple(conn.execute(select(schema.audit_head)).one()),
        }


def test_a_new_database_is_created_at_the_latest_version(store: Store) -> None:
    assert versions(store) == [LATEST]
    with store.read() as conn:
        assert set(inspect(conn).get_table_names()) == set(schema.metadata.tables)
        assert tuple(conn.execute(select(schema.audit_head)).one()) == (1, 0, migrations.GENESIS)
        assert audit.verify(conn).ok


def test_reopening_an_existing_database_changes_nothing(database: str) -> None:
    first = Store(database)
    world = seed(first)
    before = snapshot(first)
    first.close()
    for _ in range(2):
        again = Store(database)
        assert snapshot(again) == before
        again.close()
    assert before["versions"] == [LATEST] and before["rows"]["users"] == 4 and before["head"][1] > 0
    with Store(database).read() as conn:
        assert audit.verify(conn).ok
        assert conn.execute(select(schema.agreements.c.status).where(
            schema.agreements.c.id == world.agreement_id)).scalar_one() == "active"


def _v2_notes(calls: list[str]) -> Any:
    """A second migration of the kind a release would add: a new column and a new table."""
    notes = Table("job_notes", MetaData(), Column("job_id", String(36), primary_key=True),
                  Column("note", String(200), nullable=False))

    def step(conn: Connection) -> None:
        calls.append("v2")
        conn.execute(text("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"))
        notes.create(conn)

    return step


def test_an_older_database_is_upgraded_once(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = Store(database)  # created at the current version, with data in it
    world = seed(old)
    before = snapshot(old)
    old.close()
    calls: list[str] = []
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, _v2_notes(calls)))

    upgraded = Store(database)
    after = snapshot(upgraded)
    upgraded.close()
    assert calls == ["v2"] and after["versions"] == [LATEST + 1]
    assert after["tables"] == sorted([*before["tables"], "job_notes"])
    assert ("priority", "INTEGER", False) in after["columns"]["jobs"]
    assert after["rows"] == before["rows"] and after["head"] == before["head"], "the data is untouched"

    again = Store(database)  # already upgraded: the step does not run twice
    assert snapshot(again) == after and calls == ["v2"]
    with again.read() as conn:
        assert audit.verify(conn).ok
        assert conn.execute(select(schema.agreements.c.id)).scalar_one() == world.agreement_id
    again.close()


def test_a_failed_migration_leaves_the_database_as_it_was(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = Store(database)
    seed(old)
    before = snapshot(old)
    old.close()

    def broken(conn: Connection) -> None:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"))
        raise RuntimeError("a bug in migration 2")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    with pytest.raises(RuntimeError, match="migration 2"):
        Store(database)
    monkeypatch.undo()
    reopened = Store(database)
    assert snapshot(reopened) == before, "the failed step's DDL is rolled back with its version bump"
    reopened.close()


def test_a_new_database_opened_by_several_servers_at_once(database: str) -> None:
    """Two servers (or a server and `sandbox users create-admin`) starting on the same empty
    database race to create the schema; one must do it and the others must see it done."""
    openers = 8
    barrier = threading.Barrier(openers)
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            stores.append(Store(database))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == [], f"{len(errors)} of {openers} openers failed: {errors[0]!r}"
        assert versions(stores[0]) == [LATEST]
        with stores[0].read() as conn:
            assert conn.execute(select(func.count()).select_from(schema.audit_head)).scalar_one() == 1
        seed(stores[0])
        with stores[-1].read() as conn:
            assert audit.verify(conn).ok
    finally:
        for opened in stores:
            opened.close()


def test_a_version_1_database_gains_the_audit_job_index(database: str) -> None:
    from sqlalchemy import inspect, text, update

    store = Store(database)
    with store.transaction() as conn:  # make it look like a database created before version 2
        conn.execute(text("DROP INDEX audit_job"))
        conn.execute(update(schema.schema_version).values(version=1))
    store.close()
    upgraded = Store(database)
    with upgraded.read() as conn:
        assert "audit_job" in {i["name"] for i in inspect(conn).get_indexes("audit")}
        assert conn.execute(select(schema.schema_version.c.version)).scalar_one() == LATEST
    upgraded.close()
