"""A server killed mid-work (SIGKILL: no shutdown code runs) loses no budget, leaves nothing open,
and touches nothing of the other server sharing its database.

Two `sandbox serve` processes, A and B, share one data directory and one PostgreSQL database,
each owning the jobs it accepted under a short lease (test_leases.py shows the same rules on
SQLite and PostgreSQL without processes). Both engines are frozen
(SIGSTOP) before the jobs are submitted, so at the moment A is killed, some of each server's jobs
are deterministically `running` (their worker holds them) and the rest `queued`. Only A's server
process is killed, as the OOM killer would; its workers must then go away by themselves. B keeps
renewing its leases, so its jobs are left alone and release once its engine thaws; A's leases run
out and B settles A's jobs: running ones failed with their charge kept (data may have been read),
queued ones failed and refunded. Then every ledger row belongs to a job and none is still
reserved, the agreement's spent budget equals the committed charges, and the audit chain (and
its books) verify.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from sandbox import audit
from sandbox.store import Store
from sandbox.store.schema import EPSILON_UNIT, agreements, jobs, ledger
from sandbox.store.schema import audit as audit_log
from tests.service.conftest import alive, children, client, seed, wait_dead

JOBS = 4  # per server
WORKERS = 1
COST = 0.1
LEASE = 2.0  # seconds: short, so that the survivor settles the dead server's jobs quickly


def _submit(server, world, first: int) -> list[str]:
    with client(server, world.tokens["developer"]) as developer:
        submitted = [developer.post("/jobs", json={
            "sql": f"SELECT district, COUNT(*) FROM residents WHERE age >= {i} GROUP BY district",
            "epsilon": COST, "agreement_id": world.agreement_id, "wait": 0}) for i in range(first, first + JOBS)]
    assert [r.status_code for r in submitted] == [201] * JOBS, submitted[0].text
    return [r.json()["id"] for r in submitted]


def _states(server, world, ids: list[str]) -> Counter:
    with client(server, world.tokens["developer"]) as developer:
        return Counter(developer.get(f"/jobs/{i}").json()["status"] for i in ids)


def _thaw(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGCONT)


def _until(condition, timeout: float, what: str) -> None:
    """Generous deadlines: a loaded machine is slow, and the assertion after the wait is the test."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.postgres
def test_a_killed_server_leaves_no_job_open_and_the_other_servers_jobs_alone(demo_catalog, server_factory,
                                                                             fresh_postgres_db: str) -> None:
    database = fresh_postgres_db
    store = Store(database)
    world = seed(store, epsilon=5.0)
    store.close()
    a, b = server_factory.many(2, demo_catalog.data_dir, database, workers=WORKERS, job_lease_seconds=LEASE)
    frozen = {server: children(server.pid) for server in (a, b)}  # engine workers (+ resource tracker)
    assert all(len(pids) >= WORKERS for pids in frozen.values())
    for pid in frozen[a] + frozen[b]:  # frozen engines: a job handed to a worker stays running
        os.kill(pid, signal.SIGSTOP)
    try:
        mine = {a: _submit(a, world, 0), b: _submit(b, world, 100)}
        for server in (a, b):  # each job thread moves one job per worker to running, then blocks on it
            _until(lambda s=server: _states(s, world, mine[s])["running"] == WORKERS, 60, "running jobs")
        with Store(database).read() as conn:
            assert Counter(e.state for e in conn.execute(select(ledger))) == {"reserved": 2 * JOBS}
        a.process.send_signal(signal.SIGKILL)  # the server only, not its process group
        a.process.wait(10)
        _thaw(frozen[a])  # a frozen process cannot even die
        assert wait_dead(frozen[a], timeout=20) == [], "processes of the killed server still running"
        _until(lambda: _states(b, world, mine[a]) == {"failed": JOBS}, 30, "B to settle A's jobs")
        assert _states(b, world, mine[b]) == {"running": WORKERS, "queued": JOBS - WORKERS}, "B's jobs untouched"
    finally:
        _thaw(frozen[a] + frozen[b])
    _until(lambda: _states(b, world, mine[b]) == {"released": JOBS}, 60, "B's own jobs to be released")
    check_books(database, world, dead=mine[a], alive=mine[b])
    with client(b, world.tokens["auditor"]) as auditor:
        verdict = auditor.get("/audit/verify").json()
        assert verdict["ok"] is True, verdict


def check_books(database: str, world, *, dead: list[str], alive: list[str]) -> None:
    """A's jobs: recovered once each (running: charge kept; queued: refunded); B's: released, never
    recovered; ledger, jobs, the agreement's spent budget and the audit log agree."""
    store = Store(database)
    try:
        with store.read() as conn:
            rows = {r.id: r for r in conn.execute(select(jobs))}
            entries = {e.job_id: e for e in conn.execute(select(ledger))}
            agreement = conn.execute(select(agreements).where(agreements.c.id == world.agreement_id)).one()
            recovered = conn.execute(select(audit_log).where(audit_log.c.action == "job.recovered")).all()
            verification = audit.verify(conn)
    finally:
        store.close()
    assert not [r for r in rows.values() if r.status in ("queued", "running")]
    assert set(entries) <= set(rows), "no ledger row without its job"
    was = {r.job_id: json.loads(r.details) for r in recovered}
    assert set(was) == set(dead), "one job.recovered event per job of the dead server, none for the live one's"
    assert Counter(d["was"] for d in was.values()) == {"running": WORKERS, "queued": JOBS - WORKERS}
    assert all(d["charge_kept"] == (d["was"] == "running") for d in was.values())
    kept = {job_id for job_id, d in was.items() if d["charge_kept"]}
    assert {j for j, e in entries.items() if e.state == "committed"} == kept | set(alive)
    assert {j for j, e in entries.items() if e.state == "refunded"} == set(dead) - kept
    assert all(rows[j].charge_epsilon == 0 for j in set(dead) - kept)
    committed = sum(e.epsilon for e in entries.values() if e.state == "committed")
    assert agreement.spent_epsilon == committed == round((WORKERS + JOBS) * COST * EPSILON_UNIT)
    assert verification.ok, verification


# A server process that starts an engine worker and hands it a job that takes a minute.
_PARENT = textwrap.dedent("""
    import threading, time
    from sandbox.engine.worker import WorkerPool

    def slow(con, seconds):
        time.sleep(seconds)

    if __name__ == "__main__":
        pool = WorkerPool(1)
        print(pool.pids()[0], flush=True)
        threading.Thread(target=pool.run, args=(slow, 60, {}), daemon=True).start()
        time.sleep(120)
""")


def test_a_busy_worker_dies_with_its_server(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              cwd=Path(__file__).resolve().parents[2])
    worker = 0
    try:
        worker = int(parent.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1)  # the job is now running in the worker
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_dead([worker], timeout=3) == [], "the worker outlived its server by more than 3 s"
    finally:
        parent.kill()
        parent.wait(10)
        if worker and alive(worker):
            os.kill(worker, signal.SIGKILL)
