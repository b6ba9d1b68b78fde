"""Tampering with the audit log, directly in the database, is caught and the first bad event named.

A log of 20 real-looking events is built through the product, then each case edits the table the
way someone with database access could (one field, a deleted row, a reordering, a rewrite with a
recomputed hash, a forged event at the end). `audit.verify`, `GET /audit/verify` and
`sandbox audit verify` must all fail and name the same event, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, delete, insert, select, update
from typer.testing import CliRunner

from sandbox import audit
from sandbox.api import create_app
from sandbox.cli import app as cli
from sandbox.settings import Settings
from sandbox.store import Store
from sandbox.store.schema import audit as log
from tests.service.conftest import World, as_api, seed

EVENTS = 20
MIDDLE = 10
CONTENT = ("ts", "actor", "role", "action", "outcome", "agreement_id", "dataset", "job_id", "details")


def build_log(store: Store) -> World:
    """Accounts and an agreement (7 events), then explained queries up to EVENTS events."""
    world = seed(store)
    with store.read() as conn:
        have = conn.execute(select(log.c.seq).order_by(log.c.seq.desc()).limit(1)).scalar_one()
    for i in range(EVENTS - have):
        with store.transaction() as conn:
            audit.append(conn, action="job.explained", actor=world.developer.id, role="developer",
                         agreement_id=world.agreement_id, dataset="residents",
                         details={"sql": f"SELECT COUNT(*) FROM residents WHERE age > {i}", "epsilon": 0.1})
    return world


def row(conn: Connection, seq: int) -> dict:
    return dict(conn.execute(select(log).where(log.c.seq == seq)).one()._mapping)


def rehash(values: dict) -> str:
    """What a forger who knows the (public) chaining rule would compute."""
    event = {name: values[name] for name in ("seq", *CONTENT)} | {"details": json.loads(values["details"])}
    return hashlib.sha256((values["prev_hash"] + audit.canonical(event)).encode()).hexdigest()


def set_field(name: str, value: Callable[[dict], object]) -> Callable[[Connection], None]:
    def tamper(conn: Connection) -> None:
        conn.execute(update(log).where(log.c.seq == MIDDLE).values({name: value(row(conn, MIDDLE))}))

    return tamper


def delete_row(seq: int) -> Callable[[Connection], None]:
    return lambda conn: conn.execute(delete(log).where(log.c.seq == seq))


def swap(columns: tuple[str, ...]) -> Callable[[Connection], None]:
    """Exchange two neighbouring rows' `columns` (their seq stays): the events are reordered."""
    def tamper(conn: Connection) -> None:
        a, b = row(conn, MIDDLE), row(conn, MIDDLE + 1)
        conn.execute(update(log).where(log.c.seq == MIDDLE).values({c: b[c] for c in columns}))
        conn.execute(update(log).where(log.c.seq == MIDDLE + 1).values({c: a[c] for c in columns}))

    return tamper


def rewrite_and_rehash(seq: int) -> Callable[[Connection], None]:
    """Change an event and recompute its own hash, so only the chain around it can tell."""
    def tamper(conn: Connection) -> None:
        values = row(conn, seq) | {"outcome": "rejected", "details": audit.canonical({"forged": True})}
        conn.execute(update(log).where(log.c.seq == seq).values(details=values["details"], outcome="rejected",
                                                                hash=rehash(values)))

    return tamper


def append_forged(hashed: bool) -> Callable[[Connection], None]:
    """A new event after the last one, correctly chained (or not), without touching the head."""
    def tamper(conn: Connection) -> None:
        last = row(conn, EVENTS)
        values = last | {"seq": EVENTS + 1, "prev_hash": last["hash"], "action": "job.released",
                         "details": audit.canonical({"result_hash": "0" * 64})}
        conn.execute(insert(log).values(values | {"hash": rehash(values) if hashed else "f" * 64}))

    return tamper


# (case, tamper, first bad event)
CASES = [
    ("details changed", set_field("details", lambda r: audit.canonical({"sql": "SELECT 1", "epsilon": 0})), MIDDLE),
    ("actor changed", set_field("actor", lambda r: "00000000-0000-0000-0000-000000000000"), MIDDLE),
    ("ts changed", set_field("ts", lambda r: "2020-01-01T00:00:00.000000Z"), MIDDLE),
    ("outcome changed", set_field("outcome", lambda r: "rejected"), MIDDLE),
    ("action changed", set_field("action", lambda r: "job.rejected"), MIDDLE),
    ("agreement cleared", set_field("agreement_id", lambda r: None), MIDDLE),
    ("first row deleted", delete_row(1), 1),
    ("middle row deleted", delete_row(MIDDLE), MIDDLE),
    ("last row deleted", delete_row(EVENTS), EVENTS),
    ("two events reordered", swap(CONTENT), MIDDLE),
    ("two rows swapped with their hashes", swap((*CONTENT, "prev_hash", "hash")), MIDDLE),
    ("row rewritten with its hash recomputed", rewrite_and_rehash(MIDDLE), MIDDLE + 1),
    ("last row rewritten with its hash recomputed", rewrite_and_rehash(EVENTS), EVENTS),
    ("forged event appended, chained", append_forged(hashed=True), EVENTS + 1),
    ("forged event appended, bad hash", append_forged(hashed=False), EVENTS + 1),
]


def verifications(store: Store, database: str, world: World, data_dir: Path) -> tuple[dict, dict, tuple[int, str]]:
    """The same question three ways: the library, the HTTP API (as an auditor) and the CLI."""
    with store.read() as conn:
        library = audit.verify(conn).__dict__
    app = create_app(Settings(data_dir=data_dir, DATABASE_URL=database))

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as client:
            return await client.get("/audit/verify", headers={"Authorization": f"Bearer {world.tokens['auditor']}"})

    try:
        response = asyncio.run(get())
    finally:
        app.state.services.close()
    assert response.status_code == 200
    done = CliRunner().invoke(cli, ["audit", "verify", "--data-dir", str(data_dir), "--database-url", database])
    return library, response.json(), (done.exit_code, " ".join(done.output.split()))


def test_an_untouched_log_verifies(store: Store, database: str, tmp_path: Path) -> None:
    world = build_log(store)
    library, api, (code, output) = verifications(store, database, world, tmp_path)
    assert library["ok"] and api["ok"] and library["events"] == api["events"] == EVENTS
    assert library["head_hash"] == api["head_hash"]
    assert code == 0 and f"audit chain verified: {EVENTS} events" in output


@pytest.mark.parametrize("tamper,first_bad", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tampering_is_caught_and_named(store: Store, database: str, tmp_path: Path, tamper, first_bad: int) -> None:
    world = build_log(store)
    with store.read() as conn:
        assert audit.verify(conn).ok
    with store.transaction() as conn:
        tamper(conn)
    library, api, (code, output) = verifications(store, database, world, tmp_path)
    assert library["ok"] is False and library["first_bad_seq"] == first_bad, library
    assert api == as_api(library)
    assert code == 1 and f"audit chain broken at event {first_bad}:" in output, output
    assert library["events"] == first_bad - 1, "events verified before the bad one"


def test_events_appended_during_verification_are_not_tampering(store: Store) -> None:
    """A live service keeps appending while an auditor verifies; that must not look like tampering."""
    world = seed(store)
    with store.transaction() as conn:
        for i in range(2000):
            audit.append(conn, action="job.explained", actor=world.developer.id, role="developer",
                         details={"i": i})
    stop = threading.Event()

    def keep_appending() -> None:
        while not stop.is_set():
            with store.transaction() as conn:
                audit.append(conn, action="job.explained", actor=world.developer.id, role="developer",
                             details={"while": "verifying"})

    appender = threading.Thread(target=keep_appending)
    appender.start()
    try:
        results = []
        for _ in range(10):
            with store.read() as conn:
                results.append(audit.verify(conn))
    finally:
        stop.set()
        appender.join()
    assert [r for r in results if not r.ok] == []
    with store.read() as conn:
        final = audit.verify(conn)
    assert final.ok and final.events > max(r.events for r in results) >= 2000
