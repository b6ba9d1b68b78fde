"""A server killed mid-work (SIGKILL: no shutdown code runs) loses no budget and leaves nothing open.

The engine's workers are frozen (SIGSTOP) before the jobs are submitted, so at the moment of the
kill some jobs are deterministically `running` (their worker holds them) and the rest `queued`.
Only the server process is killed, as the OOM killer would; its workers must then go away by
themselves. After a restart on the same data dir and database, recovery must have closed every
job: running ones failed with their charge kept (data may have been read), queued ones failed and
refunded, every ledger row belongs to a job and none is still reserved, the agreement's spent
budget equals the committed charges, and the audit chain verifies.
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

JOBS = 12
WORKERS = 2
COST = 0.1


def test_a_killed_server_leaves_no_job_open_and_no_charge_lost(demo_catalog, server_factory, tmp_path: Path) -> None:
    database = str(tmp_path / "sandbox.db")
    store = Store(database)
    world = seed(store, epsilon=5.0)
    store.close()
    server = server_factory(demo_catalog.data_dir, database, workers=WORKERS)
    spawned = children(server.pid)  # the engine workers (and multiprocessing's resource tracker)
    assert len(spawned) >= WORKERS

    for pid in spawned:  # frozen engine: a job handed to a worker stays running
        os.kill(pid, signal.SIGSTOP)
    try:
        with client(server, world.tokens["developer"]) as developer:
            submitted = [developer.post("/jobs", json={
                "sql": f"SELECT district, COUNT(*) FROM residents WHERE age >= {i} GROUP BY district",
                "epsilon": COST, "agreement_id": world.agreement_id, "wait": 0}) for i in range(JOBS)]
            assert [r.status_code for r in submitted] == [201] * JOBS, submitted[0].text
            deadline = time.monotonic() + 10
            while True:  # the job threads move one job per worker to running, then block on it
                states = Counter(j["status"] for j in developer.get("/jobs").json())
                if states["running"] == WORKERS or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert states == {"running": WORKERS, "queued": JOBS - WORKERS}
        with Store(database).read() as conn:
            assert Counter(e.state for e in conn.execute(select(ledger))) == {"reserved": JOBS}

        server.process.send_signal(signal.SIGKILL)  # the server only, not its process group
        server.process.wait(10)
    finally:
        for pid in spawned:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
    survivors = wait_dead(spawned, timeout=20)
    assert survivors == [], f"processes of the killed server still running: {survivors}"

    server.start()  # same data dir and database; recovery runs before it serves
    with client(server, world.tokens["developer"]) as developer:
        after = {j["id"]: j for j in developer.get("/jobs").json()}
        assert Counter(j["status"] for j in after.values()) == {"failed": JOBS}
        assert all(j["error"]["code"] == "query_failed" for j in after.values())
        assert sum(j["charge_epsilon"] for j in after.values()) == pytest.approx(WORKERS * COST)
        fresh = developer.post("/jobs", json={"sql": "SELECT COUNT(*) FROM residents", "epsilon": COST,
                                              "agreement_id": world.agreement_id, "wait": 60})
        assert fresh.json()["status"] == "released", "the restarted server runs jobs again"
    with client(server, world.tokens["auditor"]) as auditor:
        assert auditor.get("/audit/verify").json()["ok"] is True

    store = Store(database)
    try:
        with store.read() as conn:
            rows = {r.id: r for r in conn.execute(select(jobs))}
            entries = conn.execute(select(ledger)).all()
            agreement = conn.execute(select(agreements).where(agreements.c.id == world.agreement_id)).one()
            recovered = conn.execute(select(audit_log).where(audit_log.c.action == "job.recovered")).all()
            verification = audit.verify(conn)
    finally:
        store.close()
    assert not [r for r in rows.values() if r.status in ("queued", "running")]
    assert all(e.job_id in rows for e in entries), "no ledger row without its job"
    assert Counter(e.state for e in entries) == {"committed": WORKERS + 1, "refunded": JOBS - WORKERS}
    committed = {e.job_id: e.epsilon for e in entries if e.state == "committed"}
    assert agreement.spent_epsilon == sum(committed.values()) == round((WORKERS + 1) * COST * EPSILON_UNIT)
    assert all(rows[job_id].charge_epsilon == epsilon for job_id, epsilon in committed.items())
    assert all(rows[e.job_id].charge_epsilon == 0 for e in entries if e.state == "refunded")

    was = {r.job_id: json.loads(r.details) for r in recovered}
    assert set(was) == set(after), "one job.recovered event per job the crash left open"
    assert Counter(d["was"] for d in was.values()) == {"running": WORKERS, "queued": JOBS - WORKERS}
    assert all(d["charge_kept"] == (d["was"] == "running") for d in was.values())
    assert all((job_id in committed) == d["charge_kept"] for job_id, d in was.items())
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
