"""Laundering: the database's own administrator rewrites the audit log *after* the last signed
checkpoint and re-hashes the chain up to the head, or appends events of their own and moves the
head. The chain then checks out and no checkpoint covers the change; before the journal, the
server's next periodic checkpoint signed the forged head and made it look vouched for.

The server keeps its own record of what it appended, outside the database (audit/journal.py).
Here the periodic checkpointer must refuse to sign past the first event it did not write and say
which, and `verify` (library and `GET /audit/verify`) must fail on that event, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import Connection, insert

from sandbox import audit
from sandbox.api import create_app
from sandbox.audit import checkpoints
from sandbox.settings import Settings
from sandbox.store import Store
from sandbox.store.schema import audit as log
from sandbox.store.schema import audit_head
from tests.service.conftest import as_api, seed
from tests.service.test_checkpoints import EVENTS, append, rewrite, signed_log
from tests.service.test_tamper import rehash, row

AFTER = 5  # events appended after the last checkpoint (at event EVENTS) before the attack


def forge_append(conn: Connection) -> None:
    """A new event at the end, chained correctly, and the head moved onto it."""
    last = row(conn, EVENTS + AFTER)
    values = last | {"seq": EVENTS + AFTER + 1, "prev_hash": last["hash"], "action": "agreement.approved",
                     "details": audit.canonical({"reason": "forged"})}
    values["hash"] = rehash(values)
    conn.execute(insert(log).values(values))
    conn.execute(audit_head.update().values(seq=values["seq"], hash=values["hash"]))


# (case, attack, the first event the sandbox did not write, words in verify's reason)
ATTACKS = [
    ("an event after the checkpoint rewritten, chain re-hashed to the head", rewrite(EVENTS + 2), EVENTS + 2,
     "rewritten and re-hashed"),
    ("the last event rewritten and re-hashed", rewrite(EVENTS + AFTER), EVENTS + AFTER, "rewritten and re-hashed"),
    ("a forged event appended and the head moved", forge_append, EVENTS + AFTER + 1, "not appended by the sandbox"),
]


def api_verify(data_dir, database: str, token: str) -> dict:
    """GET /audit/verify of an app on `data_dir` and `database` (no lifespan: no engine started)."""
    app = create_app(Settings(data_dir=data_dir, DATABASE_URL=database))

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as client:
            return await client.get("/audit/verify", headers={"Authorization": f"Bearer {token}"})

    try:
        response = asyncio.run(get())
    finally:
        app.state.services.close()
    assert response.status_code == 200, response.text
    return response.json()


def _checkpointer(store: Store, signer: checkpoints.Signer, tmp_path, database: str) -> checkpoints.Checkpointer:
    """The server's periodic checkpointer, as sandbox/api/deps.py builds it."""
    return checkpoints.Checkpointer(store, signer, every_events=1, every_seconds=3600,
                                    witness=checkpoints.witness_path(tmp_path, database),
                                    journal=audit.Journal.of(tmp_path, database))


@pytest.mark.parametrize("attack,first_forged,words", [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_the_next_checkpoint_does_not_launder_a_rewrite(store: Store, database: str, tmp_path, caplog,
                                                        attack: Callable[[Connection], None], first_forged: int,
                                                        words: str) -> None:
    world, signer = signed_log(store, database, tmp_path)
    append(store, world, AFTER)
    with store.transaction() as conn:
        attack(conn)
    with store.read() as conn:
        assert audit.verify(conn).ok, "the chain alone checks out: only the journal can tell"

    with caplog.at_level(logging.ERROR, logger="sandbox.checkpoints"):
        made = _checkpointer(store, signer, tmp_path, database).tick()
    assert made is not None and made["seq"] == first_forged - 1, "signs what the sandbox wrote, and no further"
    assert f"event {first_forged}" in caplog.text, "the divergence is reported"
    again = _checkpointer(store, signer, tmp_path, database)
    assert again.tick() is None and f"event {first_forged}" in (again.problem or ""), "and never signed later"

    result = audit.verify(store, checkpoints.Trust.of_server(tmp_path, database))
    assert not result.ok and result.kind == "journal" and result.first_bad_seq == first_forged, result
    assert words in result.reason and result.events == first_forged - 1
    answer = api_verify(tmp_path, database, world.tokens["auditor"])
    assert answer == as_api(result.__dict__)


def test_appending_on_top_of_a_forged_event_does_not_launder_it(store: Store, database: str, tmp_path) -> None:
    """The server keeps appending after a forged event; its own later events chain onto the forgery,
    but the forged one is still not in the journal, so nothing past it is ever signed."""
    world, signer = signed_log(store, database, tmp_path)
    append(store, world, AFTER)
    with store.transaction() as conn:
        forge_append(conn)
    append(store, world, 3)  # the sandbox's own events, after the forged one
    checkpointer = _checkpointer(store, signer, tmp_path, database)
    assert checkpointer.tick()["seq"] == EVENTS + AFTER
    result = audit.verify(store, checkpoints.Trust.of_server(tmp_path, database))
    assert not result.ok and result.first_bad_seq == EVENTS + AFTER + 1 and result.kind == "journal"


def test_an_untouched_log_is_signed_to_its_head(store: Store, database: str, tmp_path) -> None:
    world, signer = signed_log(store, database, tmp_path)
    append(store, world, AFTER)
    checkpointer = _checkpointer(store, signer, tmp_path, database)
    assert checkpointer.tick()["seq"] == EVENTS + AFTER and checkpointer.problem is None
    journal = audit.Journal.of(tmp_path, database).read()
    assert min(journal) == EVENTS + AFTER, "the journal keeps only what the last checkpoint does not cover"
    assert audit.verify(store, checkpoints.Trust.of_server(tmp_path, database)).ok


def _request_agreement(http: httpx.Client, n: int) -> None:
    made = http.post("/agreements", json={"purpose": f"laundering {n}", "legal_basis": "tests",
                                          "datasets": {"residents": None}, "valid_from": "2026-01-01",
                                          "valid_to": "2100-01-01", "epsilon": 1.0})
    assert made.status_code == 201, made.text


def _last_signed(http: httpx.Client) -> int | None:
    signed = http.get("/audit/checkpoints").json()["checkpoints"]
    return signed[-1]["seq"] if signed else None


@pytest.mark.postgres
def test_a_real_server_never_signs_a_laundered_head(demo_catalog, server_factory, fresh_postgres_db: str) -> None:
    """End to end, as the attack was found: `sandbox serve` signs every 3 events; its database's
    administrator rewrites the two events after the last checkpoint and re-hashes to the head; the
    server's next checkpoint comes due. Before the journal it signed the forged head and
    `GET /audit/verify` answered ok. (The library-level tests above run on both stores.)"""
    database = fresh_postgres_db
    store = Store(database)
    world = seed(store)  # 7 events, signed at start-up
    store.close()
    server = server_factory(demo_catalog.data_dir, database, workers=1, checkpoint_every_events=3,
                            checkpoint_every_seconds=3600)
    with (httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {world.tokens['developer']}"}) as dev,
          httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {world.tokens['auditor']}"}) as aud):
        for n in range(3):
            _request_agreement(dev, n)
        deadline = time.monotonic() + 20
        while _last_signed(aud) != 10:
            assert time.monotonic() < deadline, "the server did not sign event 10"
            time.sleep(0.2)
        for n in range(3, 5):
            _request_agreement(dev, n)  # events 11 and 12: not yet due
        with Store(database).transaction() as conn:
            rewrite(11)(conn)
        _request_agreement(dev, 5)  # event 13: the next checkpoint is due
        time.sleep(3)  # the checkpointer looks every second
        assert _last_signed(aud) == 10, "nothing after the last genuine checkpoint was signed"
        verdict = aud.get("/audit/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 11, verdict
