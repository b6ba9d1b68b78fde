"""Job ownership by lease, two job services on one store standing for two server processes (the
end-to-end version with real processes and SIGKILL is test_crash.py).

A service that stops renewing (a dead process) loses its jobs once their leases run out, and the
other settles them exactly once: running ones failed with their charge kept, queued ones refunded.
A service that renews keeps its jobs, however long they take. A result that arrives after its job
was settled elsewhere is dropped, and a wait on another service's job ends when that job does.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from sandbox import audit
from sandbox.jobs import JobService
from sandbox.store import Store
from tests.service.conftest import seed

COST = 0.1


class HeldEngine:
    """The real engine, held until the test lets go: a job handed to it stays running."""

    def __init__(self, engine) -> None:
        self.engine, self.gate = engine, threading.Event()

    def execute(self, plan):
        assert self.gate.wait(60)
        return self.engine.execute(plan)


def submit(service: JobService, world, i: int) -> str:
    return service.submit(world.developer, sql=f"SELECT COUNT(*) FROM residents WHERE age > {i}", epsilon=COST,
                          delta=None, agreement_id=world.agreement_id)["id"]


def statuses(service: JobService, world, ids: list[str]) -> Counter:
    return Counter(service.get(world.developer, i)["status"] for i in ids)


def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_dead_services_jobs_are_settled_once_and_a_live_ones_are_left_alone(store: Store, demo_catalog,
                                                                              engine) -> None:
    world = seed(store, epsilon=5.0)
    held_a, held_b = HeldEngine(engine), HeldEngine(engine)
    dead = JobService(store, demo_catalog, held_a, parallel=1, lease_seconds=0.5)  # never started: no heartbeat
    alive = JobService(store, demo_catalog, held_b, parallel=1, lease_seconds=0.5)
    alive.start()  # renews its leases every third of a lease, and settles expired ones
    try:
        mine = {"dead": [submit(dead, world, i) for i in range(3)],
                "alive": [submit(alive, world, 10 + i) for i in range(3)]}
        until(lambda: statuses(dead, world, mine["dead"])["running"] == 1)
        waiter = threading.Thread(target=lambda: alive.wait(world.developer, mine["dead"][0], 30))
        waiter.start()  # a wait on the other service's job: polls the store
        until(lambda: statuses(alive, world, mine["dead"]) == {"failed": 3})
        waiter.join(5)
        assert not waiter.is_alive(), "the wait ended when the other service's job was settled"
        time.sleep(1.0)  # two more lease periods: the live service's jobs stay its own
        assert statuses(alive, world, mine["alive"]) == {"running": 1, "queued": 2}
        held_a.gate.set()  # the dead service's worker finishes late: its result must be dropped
        held_b.gate.set()
        until(lambda: statuses(alive, world, mine["alive"]) == {"released": 3}, timeout=60)
    finally:
        held_a.gate.set()
        held_b.gate.set()
        dead.close()
        alive.close()
    events, _ = audit.search(store, audit.AuditFilter(action="job.recovered"), limit=10)
    assert sorted(e["job_id"] for e in events) == sorted(mine["dead"]), "settled once each, only the dead one's"
    assert Counter(e["details"]["charge_kept"] for e in events) == {True: 1, False: 2}
    assert statuses(dead, world, mine["dead"]) == {"failed": 3}, "the late result did not overwrite the recovery"
    released, _ = audit.search(store, audit.AuditFilter(action="job.released"), limit=10)
    assert sorted(e["job_id"] for e in released) == sorted(mine["alive"])
    verification = audit.verify(store)
    assert verification.ok, verification


def test_recovery_at_start_leaves_unexpired_leases_alone(store: Store, demo_catalog, engine) -> None:
    """A server starting next to a live one settles nothing of the live one's (before leases,
    start-up closed every open job in the database)."""
    world = seed(store, epsilon=5.0)
    held = HeldEngine(engine)
    first = JobService(store, demo_catalog, held, parallel=1, lease_seconds=30)
    second = JobService(store, demo_catalog, engine, parallel=1, lease_seconds=30)
    try:
        ids = [submit(first, world, i) for i in range(2)]
        assert second.start() == 0
        assert statuses(second, world, ids) - Counter({"running": 1, "queued": 1}) == Counter()
        held.gate.set()
        until(lambda: statuses(first, world, ids) == {"released": 2}, timeout=60)
    finally:
        held.gate.set()
        first.close()
        second.close()
