"""Signed checkpoints catch what the hash chain alone cannot: a rewritten chain head.

Someone with write access to the database (not to the server's data directory, where the key
is) can recompute every hash after an edit and move the head, or cut the log short and move the
head back; `audit.verify` without checkpoints then finds nothing wrong. With checkpoints signed
by the server (sandbox/checkpoints.py) the library, `GET /audit/verify` and `sandbox audit verify`
must all catch it, on SQLite and PostgreSQL, including when the attacker also deletes or forges
checkpoint rows. Also: the key file, when the service signs, the export and its signatures.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, delete, insert, inspect, select, text, update
from typer.testing import CliRunner

from sandbox import audit
from sandbox.api import create_app
from sandbox.audit import checkpoints
from sandbox.cli import app as cli
from sandbox.settings import Settings
from sandbox.store import Store, migrations, schema
from sandbox.store.schema import audit as log
from sandbox.store.schema import audit_checkpoints, audit_head
from tests.api.conftest import asgi_client
from tests.service.conftest import World, as_api, seed
from tests.service.test_tamper import build_log, rehash, row

FIRST, SECOND = 10, 20  # the checkpoints each case starts from: at event 10 and event 20
EVENTS = SECOND


def append(store: Store, world: World, count: int) -> None:
    for i in range(count):
        with store.transaction() as conn:
            audit.append(conn, action="job.explained", actor=world.developer.id, role="developer",
                         details={"sql": f"SELECT COUNT(*) FROM residents WHERE age > {100 + i}"})


def signed_log(store: Store, database: str, data_dir: Path) -> tuple[World, checkpoints.Signer]:
    """20 events with checkpoints at events 10 and 20, signed as the service signs them."""
    signer = checkpoints.Signer.load_or_create(data_dir)
    witness = checkpoints.witness_path(data_dir, database)
    world = seed(store)  # 7 events
    append(store, world, FIRST - 7)
    assert checkpoints.create(store, signer, witness=witness)["seq"] == FIRST
    append(store, world, SECOND - FIRST)
    assert checkpoints.create(store, signer, witness=witness)["seq"] == SECOND
    return world, signer


# -- what someone with database access does ----------------------------------------------------


def rehash_from(conn: Connection, seq: int) -> None:
    """Recompute every hash from event `seq` on and move the head: the chain checks out again."""
    prev = row(conn, seq - 1)["hash"] if seq > 1 else migrations.GENESIS
    last = None
    for r in conn.execute(select(log).where(log.c.seq >= seq).order_by(log.c.seq)).all():
        values = dict(r._mapping) | {"prev_hash": prev}
        prev = rehash(values)
        conn.execute(update(log).where(log.c.seq == r.seq).values(prev_hash=values["prev_hash"], hash=prev))
        last = r.seq
    conn.execute(update(audit_head).values(seq=last, hash=prev))


def rewrite(seq: int) -> Callable[[Connection], None]:
    def tamper(conn: Connection) -> None:
        conn.execute(update(log).where(log.c.seq == seq).values(
            outcome="rejected", details=audit.canonical({"sql": "SELECT 1", "epsilon": 0})))
        rehash_from(conn, seq)

    return tamper


def truncate(keep: int) -> Callable[[Connection], None]:
    def tamper(conn: Connection) -> None:
        conn.execute(delete(log).where(log.c.seq > keep))
        conn.execute(update(audit_head).values(seq=keep, hash=row(conn, keep)["hash"]))

    return tamper


def and_delete_checkpoints_after(keep: int, tamper: Callable[[Connection], None]) -> Callable[[Connection], None]:
    def both(conn: Connection) -> None:
        tamper(conn)
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep))

    return both


def and_resign(tamper: Callable[[Connection], None], *, claim_server_key: bool) -> Callable[[Connection], None]:
    """...and replace every checkpoint with ones signed by the attacker's own key for the new
    hashes (claiming the server's key id, or honestly their own)."""
    forger = checkpoints.Signer(Ed25519PrivateKey.generate())

    def both(conn: Connection) -> None:
        tamper(conn)
        old = checkpoints.stored(conn)
        conn.execute(delete(audit_checkpoints))
        prev = migrations.GENESIS
        for c in old:
            fields = c | {"hash": row(conn, c["seq"])["hash"], "prev": prev}
            if not claim_server_key:
                fields["key_id"] = forger.key_id
            fields |= {"signature": forger.sign(fields)}
            conn.execute(insert(audit_checkpoints).values(**fields))
            prev = checkpoints.link(fields)

    return both


def flip_signature(conn: Connection) -> None:
    c = checkpoints.stored(conn)[0]
    bad = ("0" if c["signature"][0] != "0" else "1") + c["signature"][1:]
    conn.execute(update(audit_checkpoints).where(audit_checkpoints.c.n == c["n"]).values(signature=bad))


def delete_checkpoint(n: int) -> Callable[[Connection], None]:
    return lambda conn: conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.n == n))


# (case, tamper, first bad event (None: the checkpoints themselves), words in the reason). Each of
# these leaves a hash chain that checks out on its own.
CASES = [
    ("log truncated and head moved back", truncate(15), 16, "events were removed"),
    ("log truncated, head moved back, later checkpoints deleted",
     and_delete_checkpoints_after(15, truncate(15)), 16, "events were removed"),
    ("history rewritten and every hash recomputed", rewrite(5), 1, "events 1 to 10 were rewritten"),
    ("rewritten after the first checkpoint, re-hashed", rewrite(15), FIRST + 1, "events 11 to 20 were rewritten"),
    ("rewritten, re-hashed, re-signed with another key under ours",
     and_resign(rewrite(5), claim_server_key=True), None, "signature does not verify"),
    ("rewritten, re-hashed, re-signed with another key",
     and_resign(rewrite(5), claim_server_key=False), None, "not a trusted key"),
    ("a checkpoint's signature changed", flip_signature, None, "signature does not verify"),
    ("the first checkpoint deleted", delete_checkpoint(1), None, "checkpoint 1 is missing"),
    ("the last checkpoint deleted", delete_checkpoint(2), None, "missing from the database"),
]


def three_ways(store: Store, database: str, world: World, data_dir: Path) -> tuple[dict, dict, tuple[int, str]]:
    """The library (with the server's trust), the HTTP API (as an auditor) and the CLI."""
    library = audit.verify(store, checkpoints.Trust.of_server(data_dir, database)).__dict__
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


def test_a_signed_log_verifies(store: Store, database: str, tmp_path: Path) -> None:
    world, signer = signed_log(store, database, tmp_path)
    append(store, world, 3)
    library, api, (code, output) = three_ways(store, database, world, tmp_path)
    assert as_api(library) == api
    assert library | {"head_hash": None} == {
        "ok": True, "events": EVENTS + 3, "head_hash": None, "first_bad_seq": None, "reason": None,
        "checkpoints": 2, "last_checkpoint_seq": SECOND, "last_checkpoint_ts": api["last_checkpoint_ts"],
        "unsigned_events": 3, "signing_key": signer.key_id, "kind": None, "agreement_id": None, "agreements": 1}
    assert code == 0 and f"audit chain verified: {EVENTS + 3} events" in output
    assert f"2 signed checkpoints (the last at event {SECOND}" in output and signer.key_id[:16] in output


@pytest.mark.parametrize("tamper,first_bad,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_rewritten_head_is_caught(store: Store, database: str, tmp_path: Path, tamper, first_bad, words) -> None:
    world, _ = signed_log(store, database, tmp_path)
    with store.transaction() as conn:
        tamper(conn)
    library, api, (code, output) = three_ways(store, database, world, tmp_path)
    assert library["ok"] is False and library["first_bad_seq"] == first_bad and words in library["reason"], library
    assert api == as_api(library)
    assert code == 1, output
    if first_bad is None:
        assert "audit checkpoints do not check out:" in output
    else:
        assert f"audit chain broken at event {first_bad}:" in output and library["events"] == first_bad - 1


def test_without_checkpoints_the_chain_alone_misses_a_rewrite(store: Store, database: str) -> None:
    """Why checkpoints exist: the same rewrite with no checkpoint verifies."""
    build_log(store)
    with store.transaction() as conn:
        rewrite(5)(conn)
    with store.read() as conn:
        assert audit.verify(conn).ok


def test_events_after_the_last_checkpoint_are_reported_as_unsigned(store: Store, database: str,
                                                                  tmp_path: Path) -> None:
    """The limit of any checkpoint: the tail after the last one is vouched for by the chain only,
    so verify says how long that tail is (the service keeps it short: every 100 events / 5 min).
    The server's journal covers that tail (test_laundering.py); a verifier with only the
    checkpoints (an auditor's export) cannot tell a rewritten tail."""
    world, signer = signed_log(store, database, tmp_path)
    append(store, world, 5)
    with store.transaction() as conn:
        rewrite(EVENTS + 2)(conn)
    library, api, _ = three_ways(store, database, world, tmp_path)
    assert as_api(library) == api and library["kind"] == "journal" and library["first_bad_seq"] == EVENTS + 2
    exported = checkpoints.Trust.of(signer, checkpoints.read_witness(checkpoints.witness_path(tmp_path, database)))
    without_journal = audit.verify(store, exported)
    assert without_journal.ok and without_journal.unsigned_events == 5


def test_an_exported_copy_catches_what_the_server_lost(store: Store, database: str, tmp_path: Path) -> None:
    """An auditor exports the checkpoints; later the log is cut short and every later checkpoint
    is removed, from the database *and* the server's own copies. The export still catches it."""
    world, signer = signed_log(store, database, tmp_path)
    exported = tmp_path / "kept-by-the-auditor.json"
    done = CliRunner().invoke(cli, ["audit", "checkpoints", str(exported), "--data-dir", str(tmp_path),
                                    "--database-url", database])
    assert done.exit_code == 0, done.output
    document = json.loads(exported.read_text())
    assert document["key_id"] == signer.key_id and len(document["checkpoints"]) == 2
    with store.transaction() as conn:
        and_delete_checkpoints_after(15, truncate(15))(conn)
    checkpoints.witness_path(tmp_path, database).unlink()
    plain = CliRunner().invoke(cli, ["audit", "verify", "--data-dir", str(tmp_path), "--database-url", database])
    assert plain.exit_code == 0, "without any copy, the truncated log looks whole"
    anchored = CliRunner().invoke(cli, ["audit", "verify", "--data-dir", str(tmp_path), "--database-url", database,
                                        "--checkpoints", str(exported)])
    assert anchored.exit_code == 1 and "audit chain broken at event 16:" in " ".join(anchored.output.split())


# -- signing -----------------------------------------------------------------------------------


def test_the_key_is_private_and_made_once(tmp_path: Path) -> None:
    signers: list[checkpoints.Signer] = []
    threads = [threading.Thread(target=lambda: signers.append(checkpoints.Signer.load_or_create(tmp_path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key = tmp_path / checkpoints.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len({s.key_id for s in signers}) == 1
    assert [p.name for p in tmp_path.iterdir()] == [checkpoints.KEY_FILE], "no temporary files left"
    assert checkpoints.Signer.load(tmp_path / "elsewhere") is None, "verifying never makes a key"


def test_a_broken_chain_is_never_signed(store: Store, database: str, tmp_path: Path) -> None:
    world, signer = signed_log(store, database, tmp_path)
    append(store, world, 3)
    with store.transaction() as conn:
        conn.execute(update(log).where(log.c.seq == EVENTS + 2).values(outcome="rejected"))
    assert checkpoints.create(store, signer) is None
    with store.read() as conn:
        assert len(checkpoints.stored(conn)) == 2


def test_the_export_verifies_with_the_published_key_alone(store: Store, database: str, tmp_path: Path) -> None:
    """Anyone can check a checkpoint with the PEM key and the documented message format."""
    world, signer = signed_log(store, database, tmp_path)
    app = create_app(Settings(data_dir=tmp_path, DATABASE_URL=database, checkpoint_every_events=1_000))
    with asgi_client(app) as client:
        headers = {"Authorization": f"Bearer {world.tokens['auditor']}"}
        document = client.get("/audit/checkpoints", headers=headers).json()
        refused = client.get("/audit/checkpoints", headers={"Authorization": f"Bearer {world.tokens['developer']}"})
    assert refused.status_code == 403
    public = serialization.load_pem_public_key(document["public_key"].encode())
    prev = "0" * 64
    for c in document["checkpoints"]:
        fields = {k: c[k] for k in ("n", "seq", "hash", "ts", "prev", "key_id")}
        signed = document["message_prefix"] + json.dumps(fields, sort_keys=True, separators=(",", ":"))
        public.verify(bytes.fromhex(c["signature"]), signed.encode())  # raises if it does not verify
        assert c["prev"] == prev and c["key_id"] == document["key_id"] == signer.key_id
        prev = checkpoints.link(c)
    with store.read() as conn:
        assert [c["hash"] for c in document["checkpoints"]] == [row(conn, s)["hash"] for s in (FIRST, SECOND)]


def test_the_service_signs_every_n_events_and_at_start_and_stop(store: Store, database: str,
                                                                tmp_path: Path) -> None:
    world = seed(store)  # 7 events, no checkpoint
    app = create_app(Settings(data_dir=tmp_path, DATABASE_URL=database, checkpoint_every_events=5,
                              checkpoint_every_seconds=3600))
    services = app.state.services
    services.checkpointer.poll_seconds = 0.05
    with asgi_client(app):
        assert [c["seq"] for c in signed(store)] == [7], "signed at start"
        append(store, world, 4)
        time.sleep(0.5)
        assert [c["seq"] for c in signed(store)] == [7], "4 events are not yet due"
        append(store, world, 1)
        wait_for(lambda: [c["seq"] for c in signed(store)] == [7, 12])
        append(store, world, 2)
    assert [c["seq"] for c in signed(store)] == [7, 12, 14], "signed at stop"
    witness = checkpoints.read_witness(checkpoints.witness_path(tmp_path, database))
    assert witness == signed(store)
    assert stat.S_IMODE(os.stat(checkpoints.witness_path(tmp_path, database)).st_mode) == 0o600


def test_the_service_signs_a_moved_head_after_t_seconds(store: Store, database: str, tmp_path: Path) -> None:
    world = seed(store)
    signer = checkpoints.Signer.load_or_create(tmp_path)
    checkpointer = checkpoints.Checkpointer(store, signer, every_events=1_000, every_seconds=0.3)
    assert checkpointer.tick()["seq"] == 7, "the first checkpoint is always due"
    append(store, world, 1)
    assert checkpointer.tick() is None
    time.sleep(0.35)
    assert checkpointer.tick()["seq"] == 8
    time.sleep(0.35)
    assert checkpointer.tick() is None, "a head that has not moved is not signed again"


def test_two_servers_sign_in_turn(store: Store, database: str, tmp_path: Path) -> None:
    """Processes sharing a database never make two checkpoints with one number or a gap."""
    world = seed(store)
    signer = checkpoints.Signer.load_or_create(tmp_path)
    stop = threading.Event()

    def sign() -> None:
        while not stop.is_set():
            checkpoints.create(store, signer)

    signers = [threading.Thread(target=sign) for _ in range(3)]
    for t in signers:
        t.start()
    try:
        append(store, world, 60)
    finally:
        stop.set()
        for t in signers:
            t.join()
    checkpoints.create(store, signer)
    with store.read() as conn:
        result = audit.verify(conn, checkpoints.Trust.of(signer))
    assert result.ok and result.checkpoints >= 2 and result.last_checkpoint_seq == result.events == 67, result


def test_a_version_2_database_gains_the_checkpoint_table(database: str) -> None:
    store = Store(database)
    with store.transaction() as conn:  # make it look like a database created before version 3
        conn.execute(text("DROP TABLE audit_checkpoints"))
        conn.execute(update(schema.schema_version).values(version=2))
    store.close()
    upgraded = Store(database)
    with upgraded.read() as conn:
        assert "audit_checkpoints" in inspect(conn).get_table_names()
        assert conn.execute(select(schema.schema_version.c.version)).scalar_one() == len(migrations.MIGRATIONS)
    upgraded.close()


def signed(store: Store) -> list[dict]:
    with store.read() as conn:
        return checkpoints.stored(conn)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
