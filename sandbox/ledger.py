"""The privacy-budget ledger: reserve before the engine runs, commit with the release, refund
only when no data was read. Amounts are integers (nano-epsilon, atto-delta), and a reservation
is one compare-and-set UPDATE, so concurrent jobs can never overspend an agreement."""

from __future__ import annotations

import math

from sqlalchemy import Connection, insert, select, update

from sandbox import audit
from sandbox.errors import BudgetExhausted
from sandbox.store import now
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements, ledger

__all__ = ["commit", "refund", "remaining", "reserve", "to_units"]


def to_units(epsilon: float, delta: float) -> tuple[int, int]:
    """Charges round up, budgets round down (see agreements.approve): never in the user's favour.
    The tolerance absorbs float noise (0.1 * 1e9 is 100000000.00000001); a positive amount
    always costs at least one unit, so no release is ever free however small its epsilon."""
    eps, dlt = math.ceil(epsilon * EPSILON_UNIT - 1e-6), math.ceil(delta * DELTA_UNIT - 1e-6)
    return (max(eps, 1) if epsilon > 0 else eps), (max(dlt, 1) if delta > 0 else dlt)


def remaining(row) -> tuple[float, float]:
    return ((row.budget_epsilon - row.spent_epsilon) / EPSILON_UNIT, (row.budget_delta - row.spent_delta) / DELTA_UNIT)


def reserve(conn: Connection, *, agreement_id: str, job_id: str, epsilon: float, delta: float) -> tuple[int, int]:
    eps, dlt = to_units(epsilon, delta)
    changed = conn.execute(
        update(agreements)
        .where(agreements.c.id == agreement_id, agreements.c.status == "active",
               agreements.c.spent_epsilon + eps <= agreements.c.budget_epsilon,
               agreements.c.spent_delta + dlt <= agreements.c.budget_delta)
        .values(spent_epsilon=agreements.c.spent_epsilon + eps, spent_delta=agreements.c.spent_delta + dlt,
                updated_at=now())
    ).rowcount
    if changed != 1:
        row = conn.execute(select(agreements).where(agreements.c.id == agreement_id)).one()
        left_eps, left_delta = remaining(row)
        raise BudgetExhausted(
            f"This query needs epsilon {epsilon:g} (delta {delta:g}) but agreement {agreement_id} has "
            f"epsilon {max(left_eps, 0):g} and delta {max(left_delta, 0):g} left. Ask for less (a smaller epsilon, "
            "public GROUP BY keys need no delta), reuse an earlier release, or ask the operator for more budget.",
            agreement_id=agreement_id, remaining_epsilon=max(left_eps, 0), remaining_delta=max(left_delta, 0),
        )
    conn.execute(insert(ledger).values(job_id=job_id, agreement_id=agreement_id, epsilon=eps, delta=dlt,
                                       state="reserved", created_at=now(), updated_at=now()))
    return eps, dlt


def commit(conn: Connection, job_id: str) -> None:
    entry = conn.execute(select(ledger).where(ledger.c.job_id == job_id, ledger.c.state == "reserved")).first()
    if entry is None:
        return
    conn.execute(update(ledger).where(ledger.c.job_id == job_id).values(state="committed", updated_at=now()))
    row = conn.execute(select(agreements).where(agreements.c.id == entry.agreement_id)).one()
    if row.status == "active" and row.spent_epsilon >= row.budget_epsilon:
        # Compare-and-set on the status: two commits racing past the read above (PostgreSQL,
        # read committed) must not both record the transition.
        changed = conn.execute(update(agreements).where(agreements.c.id == row.id, agreements.c.status == "active")
                               .values(status="exhausted", updated_at=now())).rowcount
        if changed == 1:
            audit.append(conn, action="agreement.exhausted", role="system", agreement_id=row.id,
                         details={"spent_epsilon": row.spent_epsilon / EPSILON_UNIT})


def refund(conn: Connection, job_id: str) -> None:
    entry = conn.execute(select(ledger).where(ledger.c.job_id == job_id, ledger.c.state == "reserved")).first()
    if entry is None:
        return
    conn.execute(update(ledger).where(ledger.c.job_id == job_id).values(state="refunded", updated_at=now()))
    conn.execute(update(agreements).where(agreements.c.id == entry.agreement_id).values(
        spent_epsilon=agreements.c.spent_epsilon - entry.epsilon, spent_delta=agreements.c.spent_delta - entry.delta,
        updated_at=now()))
    # An agreement marked exhausted while this reservation was in flight has budget again.
    reactivated = conn.execute(
        update(agreements)
        .where(agreements.c.id == entry.agreement_id, agreements.c.status == "exhausted",
               agreements.c.spent_epsilon < agreements.c.budget_epsilon)
        .values(status="active", updated_at=now())
    ).rowcount
    if reactivated:
        audit.append(conn, action="agreement.reactivated", role="system", agreement_id=entry.agreement_id,
                     details={"refunded_job": job_id})
