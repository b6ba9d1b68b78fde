"""Budget under contention: 200 concurrent submissions against a budget that allows exactly 10.

Each query costs epsilon 0.1 against a budget of 1.0, and every query is different (the WHERE
constant varies), so reuse of an earlier release cannot hide a race. Exactly 10 may run, the
other 190 must be refused, and the job rows, the ledger, the agreement's spent budget and the
audit chain must tell the same story. Driven through `JobService` with a thread pool (where the
races happen) on SQLite and PostgreSQL, and end to end through two real `sandbox serve` processes
sharing one PostgreSQL database (each gets half the requests).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from sandbox import audit
from sandbox.engine import Engine
from sandbox.errors import SandboxError
from sandbox.jobs import JobService
from sandbox.store import Store
from sandbox.store.schema import EPSILON_UNIT, agreements, jobs, ledger
from sandbox.store.schema import audit as audit_log
from tests.service.conftest import World, client, seed

SUBMISSIONS = 200
BUDGET, COST = 1.0, 0.1
WINNERS = 10  # BUDGET / COST, exactly: charges are integers of nano-epsilon
THREADS = 32


def query(i: int) -> str:
    return f"SELECT COUNT(*) FROM residents WHERE monthly_income > {i * 37}"


def refused_for_budget(code: str, fields: dict) -> bool:
    """The budget ran out: either the reservation's compare-and-set failed (budget_exhausted), or
    the agreement had already been marked exhausted by an earlier commit (agreement_inactive with
    status 'exhausted'; see test_an_exhausted_agreement_refuses_with_budget_exhausted)."""
    return code == "budget_exhausted" or (code == "agreement_inactive" and fields.get("status") == "exhausted")


def check_books(store: Store, world: World, released_ids: set[str], rejected_ids: set[str]) -> None:
    """Jobs, ledger, agreement and audit log agree, and the budget was never overspent."""
    assert len(released_ids) == WINNERS and len(rejected_ids) == SUBMISSIONS - WINNERS
    with store.read() as conn:
        rows = conn.execute(select(jobs).where(jobs.c.developer_id == world.developer.id)).all()
        assert Counter(r.status for r in rows) == {"released": WINNERS, "rejected": SUBMISSIONS - WINNERS}
        assert {r.id for r in rows if r.status == "released"} == released_ids
        assert {r.id for r in rows if r.status == "rejected"} == rejected_ids
        assert all(r.result and r.result_hash and r.reused_from is None for r in rows if r.status == "released")

        entries = {e.job_id: e for e in conn.execute(select(ledger)).all()}
        assert set(entries) == released_ids, "a ledger row per released job, none for refusals"
        assert {e.state for e in entries.values()} == {"committed"}
        assert all(r.charge_epsilon == entries[r.id].epsilon for r in rows if r.status == "released")
        assert all(r.charge_epsilon == 0 for r in rows if r.status == "rejected")

        agreement = conn.execute(select(agreements).where(agreements.c.id == world.agreement_id)).one()
        committed = sum(e.epsilon for e in entries.values())
        assert committed == agreement.spent_epsilon == agreement.budget_epsilon == round(BUDGET * EPSILON_UNIT)
        assert agreement.status == "exhausted"

        events = conn.execute(select(audit_log.c.action, audit_log.c.job_id)
                              .where(audit_log.c.action.like("job.%"))).all()
        by_action = Counter(e.action for e in events)
        assert by_action == {"job.submitted": WINNERS, "job.released": WINNERS, "job.rejected": SUBMISSIONS - WINNERS}
        for action, expected in (("job.submitted", released_ids), ("job.released", released_ids),
                                 ("job.rejected", rejected_ids)):
            assert {e.job_id for e in events if e.action == action} == expected, action
        exhausted = conn.execute(select(audit_log).where(audit_log.c.action == "agreement.exhausted")).all()
        assert len(exhausted) == 1
        verification = audit.verify(conn)
        assert verification.ok, verification


class HeldEngine:
    """The real engine, held back until every submission is in: then all 200 reservations race
    each other through the compare-and-set, with no release (and no 'exhausted' status) between."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.gate = engine, threading.Event()

    def execute(self, plan):
        assert self.gate.wait(60)
        return self.engine.execute(plan)


@pytest.mark.parametrize("releases", ["held", "interleaved"])
def test_200_concurrent_submissions_release_exactly_10(store: Store, demo_catalog, engine, releases: str) -> None:
    world = seed(store, epsilon=BUDGET)
    held = HeldEngine(engine)
    if releases == "interleaved":
        held.gate.set()
    service = JobService(store, demo_catalog, held, parallel=2)

    def submit(i: int) -> tuple[str, dict, str]:
        try:
            job = service.submit(world.developer, sql=query(i), epsilon=COST, delta=None,
                                 agreement_id=world.agreement_id)
        except SandboxError as exc:
            return exc.code, exc.fields, exc.fields["job_id"]
        return "accepted", {}, job["id"]

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(submit, range(SUBMISSIONS)))
        held.gate.set()
        accepted = {job_id for code, _, job_id in outcomes if code == "accepted"}
        finished = [service.wait(world.developer, job_id, 60) for job_id in accepted]
        elapsed = time.perf_counter() - start
    finally:
        held.gate.set()
        service.close()
    refusals = [(code, fields) for code, fields, _ in outcomes if code != "accepted"]
    assert all(refused_for_budget(code, fields) for code, fields in refusals), Counter(c for c, _ in refusals)
    if releases == "held":
        assert {code for code, _ in refusals} == {"budget_exhausted"}
        assert all(fields["remaining_epsilon"] == 0 for _, fields in refusals)
    assert [job["status"] for job in finished] == ["released"] * WINNERS
    check_books(store, world, accepted, {job_id for code, _, job_id in outcomes if code != "accepted"})
    print(f"\n{store.url.split(':')[0]}, releases {releases}: {len(accepted)} released, {len(refusals)} refused "
          f"{dict(Counter(c for c, _ in refusals))} in {elapsed:.2f}s")


def test_an_exhausted_agreement_refuses_with_budget_exhausted(store: Store, demo_catalog, engine) -> None:
    world = seed(store, epsilon=2 * COST)
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        for i in range(2):
            job = service.submit(world.developer, sql=query(i), epsilon=COST, delta=None,
                                 agreement_id=world.agreement_id)
            assert service.wait(world.developer, job["id"], 60)["status"] == "released"
        with pytest.raises(SandboxError) as refused:
            service.submit(world.developer, sql=query(2), epsilon=COST, delta=None, agreement_id=world.agreement_id)
    finally:
        service.close()
    assert refused.value.code == "budget_exhausted"


@pytest.mark.postgres
def test_200_concurrent_http_submissions_to_two_servers_release_exactly_10(demo_catalog, server_factory,
                                                                            fresh_postgres_db: str) -> None:
    database = fresh_postgres_db
    store = Store(database)
    world = seed(store, epsilon=BUDGET)
    store.close()
    servers = server_factory.many(2, demo_catalog.data_dir, database, workers=1)

    async def submit_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=SUBMISSIONS, max_keepalive_connections=SUBMISSIONS)
        headers = {"Authorization": f"Bearer {world.tokens['developer']}"}
        async with httpx.AsyncClient(limits=limits, timeout=120, headers=headers) as client:
            return await asyncio.gather(*(
                client.post(servers[i % 2].url + "/jobs", json={"sql": query(i), "epsilon": COST,
                                                               "agreement_id": world.agreement_id, "wait": 60})
                for i in range(SUBMISSIONS)))

    start = time.perf_counter()
    responses = asyncio.run(submit_all())
    elapsed = time.perf_counter() - start
    released = [r.json() for r in responses if r.status_code == 201]
    refused = [r.json()["error"] for r in responses if r.status_code != 201]
    assert [job["status"] for job in released] == ["released"] * WINNERS
    assert all(refused_for_budget(e["code"], e) for e in refused), Counter(e["code"] for e in refused)
    assert {r.status_code for r in responses if r.status_code != 201} == {403}
    assert sum(job["charge_epsilon"] for job in released) == pytest.approx(BUDGET)

    for server in servers:
        with client(server, world.tokens["auditor"]) as auditor:
            assert auditor.get("/audit/verify").json()["ok"] is True
            assert auditor.get("/agreements/" + world.agreement_id).json()["remaining_epsilon"] == 0
    for server in servers:
        server.stop()
    store = Store(database)
    try:
        check_books(store, world, {job["id"] for job in released}, {e["job_id"] for e in refused})
    finally:
        store.close()
    print(f"\nhttp, two servers: {len(released)} released, {len(refused)} refused "
          f"{dict(Counter(e['code'] for e in refused))} in {elapsed:.2f}s")
