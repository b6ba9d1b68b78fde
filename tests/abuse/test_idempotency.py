"""`Idempotency-Key` on POST /jobs: a replayed submission returns the same job and is charged
once, also when the replays arrive at the same moment (a client retrying after a timeout while
its first request is still being served), on SQLite and PostgreSQL, to one server, and spread
over two `sandbox serve` processes sharing a PostgreSQL database. The same key for a different request is a
409, and keys are per developer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from sandbox import audit
from sandbox.store import Store
from sandbox.store.schema import EPSILON_UNIT, agreements, jobs, ledger
from sandbox.store.schema import audit as audit_log
from tests.abuse.conftest import bearer
from tests.service.conftest import seed

SQL = "SELECT district, COUNT(*) FROM residents GROUP BY district"
REPLAYS = 16


def books(store, world) -> tuple[list, list, int, list]:
    with store.read() as conn:
        rows = conn.execute(select(jobs).where(jobs.c.developer_id == world.developer.id)).all()
        entries = conn.execute(select(ledger)).all()
        spent = conn.execute(select(agreements.c.spent_epsilon)
                             .where(agreements.c.id == world.agreement_id)).scalar_one()
        submitted = conn.execute(select(audit_log.c.job_id).where(audit_log.c.action == "job.submitted")).all()
        assert audit.verify(conn).ok
    return rows, entries, spent, submitted


def test_replays_return_the_same_job_charged_once(store, app_client) -> None:
    world = seed(store)
    headers = bearer(world.tokens["developer"]) | {"Idempotency-Key": "report-2026-q4"}
    body = {"sql": SQL, "epsilon": 0.25, "agreement_id": world.agreement_id, "wait": 30}
    with app_client() as (_, client):
        first = client.post("/jobs", json=body, headers=headers)
        again = client.post("/jobs", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"] and again.json()["result"] == first.json()["result"]
        conflict = client.post("/jobs", json=body | {"epsilon": 0.5}, headers=headers)
        assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
        assert "use a new key" in conflict.json()["error"]["message"]
    rows, entries, spent, submitted = books(store, world)
    assert [r.id for r in rows] == [first.json()["id"]] and len(entries) == 1 and len(submitted) == 1
    assert spent == round(0.25 * EPSILON_UNIT)


def test_concurrent_replays_make_one_job(store, app_client) -> None:
    world = seed(store)
    headers = bearer(world.tokens["developer"]) | {"Idempotency-Key": "retry-storm"}
    body = {"sql": SQL, "epsilon": 0.25, "agreement_id": world.agreement_id, "wait": 30}
    with app_client() as (_, client):
        with ThreadPoolExecutor(REPLAYS) as pool:
            responses = list(pool.map(lambda _: client.post("/jobs", json=body, headers=headers), range(REPLAYS)))
    assert [r.status_code for r in responses] == [201] * REPLAYS, [r.text for r in responses if r.status_code != 201]
    assert len({r.json()["id"] for r in responses}) == 1
    rows, entries, spent, submitted = books(store, world)
    assert len(rows) == 1 and len(entries) == 1 and len(submitted) == 1, "one job, one charge, one event"
    assert spent == round(0.25 * EPSILON_UNIT)


@pytest.mark.postgres
def test_concurrent_replays_to_two_servers_make_one_job(fresh_postgres_db, demo_catalog, server_factory) -> None:
    database = fresh_postgres_db
    store = Store(database)
    world = seed(store)
    servers = server_factory.many(2, demo_catalog.data_dir, database, workers=1)
    headers = bearer(world.tokens["developer"]) | {"Idempotency-Key": "retry-storm-two-servers"}
    body = {"sql": SQL, "epsilon": 0.25, "agreement_id": world.agreement_id, "wait": 30}
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(REPLAYS) as pool:
        responses = list(pool.map(lambda i: client.post(servers[i % 2].url + "/jobs", json=body, headers=headers),
                                  range(REPLAYS)))
    assert [r.status_code for r in responses] == [201] * REPLAYS, [r.text for r in responses if r.status_code != 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert {r.json()["status"] for r in responses} <= {"queued", "running", "released"}
    rows, entries, spent, submitted = books(store, world)
    store.close()
    assert len(rows) == 1 and len(entries) == 1 and len(submitted) == 1, "one job, one charge, one event"
    assert spent == round(0.25 * EPSILON_UNIT)


def test_keys_are_per_developer(store, app_client) -> None:
    from sandbox import accounts
    from sandbox import agreements as agreement_service
    from tests.service.conftest import RESIDENTS

    world = seed(store)
    with store.transaction() as conn:
        _, other, other_token = accounts.create_licence(
            conn, world.operator, name="Other", organisation="Xiamen University", licence_number="XM-TEST-0003",
            valid_from="2020-01-01", valid_to="2100-01-01")
        theirs = agreement_service.request(
            conn, other, purpose="tests", legal_basis="tests", datasets={"residents": None},
            valid_from="2020-01-01", valid_to="2100-01-01", epsilon=1.0, delta=0.0, known=RESIDENTS)
        agreement_service.approve(conn, world.operator, theirs["id"])
    key = {"Idempotency-Key": "the-same-words"}
    with app_client() as (_, client):
        mine = client.post("/jobs", json={"sql": SQL, "epsilon": 0.1, "agreement_id": world.agreement_id},
                           headers=bearer(world.tokens["developer"]) | key)
        other_job = client.post("/jobs", json={"sql": SQL, "epsilon": 0.1, "agreement_id": theirs["id"]},
                                headers=bearer(other_token) | key)
    assert mine.status_code == other_job.status_code == 201 and mine.json()["id"] != other_job.json()["id"]
