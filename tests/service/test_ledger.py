"""Ledger transitions that the concurrency tests only reach by chance."""

from __future__ import annotations

from sqlalchemy import insert, select

from sandbox import audit, ledger
from sandbox.store import Store, now
from sandbox.store.schema import agreements, jobs
from tests.service.conftest import seed


def _job(conn, world, job_id: str) -> None:
    conn.execute(insert(jobs).values(id=job_id, developer_id=world.developer.id, agreement_id=world.agreement_id,
                                     sql="SELECT COUNT(*) FROM residents", epsilon=0.5, status="queued",
                                     created_at=now()))


def test_a_refund_reactivates_an_agreement_exhausted_by_in_flight_reservations(database: str) -> None:
    store = Store(database)
    world = seed(store, epsilon=1.0)
    with store.transaction() as conn:
        for job_id in ("a", "b"):
            _job(conn, world, job_id)
            ledger.reserve(conn, agreement_id=world.agreement_id, job_id=job_id, epsilon=0.5, delta=0.0)
        ledger.commit(conn, "a")  # spent (with b's reservation) reaches the budget
        assert conn.execute(select(agreements.c.status)).scalar_one() == "exhausted"
        ledger.refund(conn, "b")  # b failed before reading data
        assert conn.execute(select(agreements.c.status)).scalar_one() == "active"
        events, _ = audit.search(conn, audit.AuditFilter(agreement_id=world.agreement_id))
        assert [e["action"] for e in events][:2] == ["agreement.reactivated", "agreement.exhausted"]
        assert audit.verify(conn).ok
    store.close()
