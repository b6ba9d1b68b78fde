"""Ledger transitions that the concurrency tests only reach by chance, through the job path's own
writers (ledger.reserve with its audit event, jobs.settle), so the books still add up."""

from __future__ import annotations

from sqlalchemy import insert, select, update

from sandbox import audit, ledger
from sandbox.errors import QueryFailed
from sandbox.jobs import settle
from sandbox.store import Store, now
from sandbox.store.schema import agreements, jobs
from tests.service.conftest import seed


def _reserved_job(conn, world, job_id: str) -> None:
    conn.execute(insert(jobs).values(id=job_id, developer_id=world.developer.id, agreement_id=world.agreement_id,
                                     sql="SELECT COUNT(*) FROM residents", epsilon=0.5, status="running",
                                     created_at=now()))
    eps, dlt = ledger.reserve(conn, agreement_id=world.agreement_id, job_id=job_id, epsilon=0.5, delta=0.0)
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(charge_epsilon=eps, charge_delta=dlt))
    audit.append(conn, action="job.submitted", actor=world.developer.id, role="developer", job_id=job_id,
                 agreement_id=world.agreement_id, details={"reserved": ledger.units(eps, dlt)})


def test_a_refund_reactivates_an_agreement_exhausted_by_in_flight_reservations(database: str) -> None:
    store = Store(database)
    world = seed(store, epsilon=1.0)
    with store.transaction() as conn:
        for job_id in ("a", "b"):
            _reserved_job(conn, world, job_id)
        a = settle.claim(conn, "a")
        settle.settle(conn, a, settle.released("{}", "0" * 64, {}))  # spent, with b's reservation: the budget
        assert conn.execute(select(agreements.c.status)).scalar_one() == "exhausted"
        b = settle.claim(conn, "b")
        settle.settle(conn, b, settle.failed(QueryFailed(data_touched=False)))  # b failed before reading data
        assert conn.execute(select(agreements.c.status)).scalar_one() == "active"
        events, _ = audit.search(conn, audit.AuditFilter(agreement_id=world.agreement_id))
        assert [e["action"] for e in events][:4] == [
            "job.failed", "agreement.reactivated", "job.released", "agreement.exhausted"]
        assert events[0]["details"]["refunded"] == {"epsilon": 500_000_000, "delta": 0}
        verification = audit.verify(conn)
        assert verification.ok and verification.agreements == 1, verification
    store.close()
