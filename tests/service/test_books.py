"""The budget cannot be refilled behind the audit log's back.

Whoever can write to the database can set an exhausted agreement's `spent_epsilon` back to 0 (or
raise its `budget_epsilon`, or drop a ledger row), and the compare-and-set then hands out budget
that was already spent. The audit events still say what was granted and charged, so `verify`
recomputes every agreement's budget and spending from them and fails, naming the agreement, when
the database disagrees: library and `GET /audit/verify`, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, delete, update

from sandbox import audit
from sandbox.errors import SandboxError
from sandbox.jobs import JobService
from sandbox.store import Store
from sandbox.store.schema import EPSILON_UNIT, agreements, ledger
from tests.service.conftest import World, seed
from tests.service.test_laundering import api_verify

COST = 0.5


def spend_it_all(store: Store, world: World, demo_catalog, engine) -> JobService:
    """Two released jobs of epsilon 0.5 exhaust the agreement's 1.0 (through the job service); a
    third is refused."""
    service = JobService(store, demo_catalog, engine, parallel=1)
    for i in range(2):
        job = service.submit(world.developer, sql=f"SELECT COUNT(*) FROM residents WHERE age > {i}", epsilon=COST,
                             delta=None, agreement_id=world.agreement_id)
        assert service.wait(world.developer, job["id"], 60)["status"] == "released"
    with pytest.raises(SandboxError) as refused:
        service.submit(world.developer, sql="SELECT COUNT(*) FROM residents WHERE age > 7", epsilon=COST,
                       delta=None, agreement_id=world.agreement_id)
    assert refused.value.code in ("budget_exhausted", "agreement_inactive")
    return service


def reset_spent(agreement_id: str) -> Callable[[Connection], None]:
    return lambda conn: conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(
        spent_epsilon=0, status="active"))


def raise_budget(agreement_id: str) -> Callable[[Connection], None]:
    return lambda conn: conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(
        budget_epsilon=agreements.c.budget_epsilon + 10 * EPSILON_UNIT, status="active"))


def drop_a_charge(agreement_id: str) -> Callable[[Connection], None]:
    def tamper(conn: Connection) -> None:
        conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(
            spent_epsilon=agreements.c.spent_epsilon - round(COST * EPSILON_UNIT), status="active"))
        conn.execute(delete(ledger).where(ledger.c.job_id.in_(
            ledger.select().with_only_columns(ledger.c.job_id).limit(1).scalar_subquery())))

    return tamper


# (case, tamper, words in the reason: after the tampering, one more job of 0.5 got through)
CASES = [
    ("spent set back to 0", reset_spent, "the database says epsilon 0.5 (delta 0) spent, but its audit events "
                                         "charge epsilon 1.5 (delta 0) (budget epsilon 1 (delta 0))"),
    ("budget raised", raise_budget, "the database grants a budget of epsilon 11 (delta 0), but its audit "
                                    "events grant epsilon 1 (delta 0)"),
    ("a charge and its ledger row removed", drop_a_charge, "the database says epsilon 1 (delta 0) spent, but its "
                                                           "audit events charge epsilon 1.5"),
]


@pytest.mark.parametrize("tamper,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_refilled_budget_fails_verification_and_names_the_agreement(store: Store, database: str, tmp_path,
                                                                      demo_catalog, engine, tamper,
                                                                      words: str) -> None:
    world = seed(store, epsilon=2 * COST)
    service = spend_it_all(store, world, demo_catalog, engine)
    try:
        assert audit.verify(store).ok
        with store.transaction() as conn:
            tamper(world.agreement_id)(conn)
        again = service.submit(world.developer, sql="SELECT COUNT(*) FROM residents WHERE age > 9", epsilon=COST,
                               delta=None, agreement_id=world.agreement_id)
        assert again["status"] in ("queued", "running", "released"), "the attack works on the ledger..."
        service.wait(world.developer, again["id"], 60)
    finally:
        service.close()
    result = audit.verify(store)
    assert not result.ok and result.kind == "budget", "...and verify catches it"
    assert result.agreement_id == world.agreement_id and result.first_bad_seq is None
    assert result.reason.startswith(f"agreement {world.agreement_id}: ") and words in result.reason, result.reason
    answer = api_verify(tmp_path, database, world.tokens["auditor"])
    assert answer["ok"] is False and answer["reason"] == result.reason and answer["first_bad_seq"] is None


def test_honest_books_verify(store: Store, demo_catalog, engine) -> None:
    """Released, refused, exhausted and reused: the events add up (refunds: test_ledger.py,
    test_crash.py)."""
    world = seed(store, epsilon=2 * COST)
    service = spend_it_all(store, world, demo_catalog, engine)
    try:
        reused = service.submit(world.developer, sql="SELECT COUNT(*) FROM residents WHERE age > 0", epsilon=COST,
                                delta=None, agreement_id=world.agreement_id)
        assert reused["reused"]
    finally:
        service.close()
    result = audit.verify(store)
    assert result.ok and result.agreements == 1, result
