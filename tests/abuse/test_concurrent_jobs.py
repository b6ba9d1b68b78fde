"""At most `max_active_jobs` queued or running jobs per developer, counted in the store inside
the submission's transaction: it holds under concurrent submissions on SQLite and PostgreSQL, a
refusal (429 `too_many_jobs`) charges nothing and records nothing, and room comes back as jobs
finish. Reused releases need no room."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from sandbox.api import create_app
from sandbox.errors import SandboxError, TooManyJobs
from sandbox.jobs import JobService
from sandbox.settings import Settings
from sandbox.store.schema import audit as audit_log
from sandbox.store.schema import jobs, ledger
from tests.abuse.conftest import bearer
from tests.api.conftest import asgi_client
from tests.service.conftest import seed

LIMIT = 3


def query(i: int) -> str:
    return f"SELECT COUNT(*) FROM residents WHERE age > {i}"


class HeldEngine:
    """The real engine, held until the test lets go: submitted jobs stay queued or running."""

    def __init__(self, engine) -> None:
        self.engine, self.gate = engine, threading.Event()

    def execute(self, plan):
        assert self.gate.wait(60)
        return self.engine.execute(plan)

    def close(self) -> None:  # the session's engine outlives an app that closes its own
        pass


def test_concurrent_submissions_get_exactly_the_limit(store, demo_catalog, engine) -> None:
    world = seed(store, epsilon=10.0)
    held = HeldEngine(engine)
    service = JobService(store, demo_catalog, held, parallel=2, max_active=LIMIT)

    def submit(i: int) -> str:
        try:
            return service.submit(world.developer, sql=query(i), epsilon=0.1, delta=None,
                                  agreement_id=world.agreement_id)["id"]
        except SandboxError as exc:
            return exc.code

    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(submit, range(40)))
        codes = Counter(o if o == "too_many_jobs" else "accepted" for o in outcomes)
        assert codes == {"accepted": LIMIT, "too_many_jobs": 40 - LIMIT}
        with store.read() as conn:
            assert conn.execute(select(func.count()).select_from(jobs)).scalar_one() == LIMIT, "refusals leave no job"
            assert conn.execute(select(func.count()).select_from(ledger)).scalar_one() == LIMIT, "...and no charge"
            rejected = conn.execute(select(func.count()).select_from(audit_log)
                                    .where(audit_log.c.action == "job.rejected")).scalar_one()
            assert rejected == 0, "...and no audit event"
        with_room = [o for o in outcomes if o != "too_many_jobs"]
        held.gate.set()
        assert [service.wait(world.developer, j, 60)["status"] for j in with_room] == ["released"] * LIMIT
        again = service.submit(world.developer, sql=query(100), epsilon=0.1, delta=None,
                               agreement_id=world.agreement_id)
        assert again["status"] in ("queued", "running", "released"), "room again once jobs finish"
        service.wait(world.developer, again["id"], 60)
    finally:
        held.gate.set()
        service.close()


def test_the_refusal_says_which_jobs_and_when_to_retry(store, demo_catalog, engine) -> None:
    world = seed(store, epsilon=10.0)
    held = HeldEngine(engine)
    service = JobService(store, demo_catalog, held, parallel=1, max_active=1)
    try:
        first = service.submit(world.developer, sql=query(1), epsilon=0.1, delta=None, agreement_id=world.agreement_id)
        try:
            service.submit(world.developer, sql=query(2), epsilon=0.1, delta=None, agreement_id=world.agreement_id)
        except TooManyJobs as exc:
            refused = exc
        else:
            raise AssertionError("a second job was accepted")
        assert refused.status == 429 and refused.retry_after == 5 and refused.fields["active_jobs"] == [first["id"]]
        assert "1 jobs queued or running" in refused.message and "Retry in about 5 s" in refused.message
        # the same query again is a reused release or a replay, not a new job: no room needed
        held.gate.set()
        service.wait(world.developer, first["id"], 60)
        held.gate.clear()
        blocker = service.submit(world.developer, sql=query(3), epsilon=0.1, delta=None,
                                 agreement_id=world.agreement_id)
        reused = service.submit(world.developer, sql=query(1), epsilon=0.1, delta=None,
                                agreement_id=world.agreement_id)
        assert reused["reused"] and reused["status"] == "released", "a stored release needs no room"
        held.gate.set()
        service.wait(world.developer, blocker["id"], 60)
    finally:
        held.gate.set()
        service.close()


def test_http_429_too_many_jobs(store, database, demo_catalog, engine) -> None:
    world = seed(store, epsilon=10.0)
    app = create_app(Settings(data_dir=demo_catalog.data_dir, DATABASE_URL=database, max_active_jobs=1))
    services, held = app.state.services, HeldEngine(engine)
    services.__dict__["jobs"] = JobService(services.store, services.catalog, held, parallel=1,
                                           max_active=services.settings.max_active_jobs)
    developer = bearer(world.tokens["developer"])
    body = {"epsilon": 0.1, "agreement_id": world.agreement_id}
    with asgi_client(app) as client:
        try:
            assert client.post("/jobs", json=body | {"sql": query(1)}, headers=developer).status_code == 201
            refused = client.post("/jobs", json=body | {"sql": query(2)}, headers=developer)
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
            error = refused.json()["error"]
            assert error["code"] == "too_many_jobs" and error["retry_after"] == 5 and len(error["active_jobs"]) == 1
        finally:
            held.gate.set()
