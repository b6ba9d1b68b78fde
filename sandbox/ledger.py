"""The privacy-budget ledger: reserve before the engine runs, commit with the release, refund
only when no data was read. Amounts are integers (nano-epsilon, atto-delta: store/units.py),
and a reservation is one compare-and-set UPDATE, so concurrent jobs can never overspend an
agreement. Each change is written in the caller's transaction, next to the audit event that
records it (whose `reserved` / `refunded` amounts audit/budgets.py adds up again)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from sandbox import audit, stewards
from sandbox.errors import BudgetExhausted
from sandbox.store import Database, now, reading
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements, ledger
from sandbox.store.units import charge_units

__all__ = ["Units", "commit", "refund", "remaining", "reserve", "spending", "units"]

Units = dict[str, int]  # {"epsilon": nano-epsilon, "delta": atto-delta}, as the audit events carry them


def units(epsilon: int, delta: int) -> Units:
    return {"epsilon": int(epsilon), "delta": int(delta)}


def remaining(row) -> tuple[float, float]:
    return ((row.budget_epsilon - row.spent_epsilon) / EPSILON_UNIT, (row.budget_delta - row.spent_delta) / DELTA_UNIT)


def reserve(conn: Connection, *, agreement_id: str, job_id: str, epsilon: float, delta: float,
            datasets: Sequence[str] = ()) -> tuple[int, int]:
    """Charge the agreement and, for each private dataset the job reads (`datasets`), that
    dataset's part of it (a steward's budget for it, sandbox/stewards.py)."""
    eps, dlt = charge_units(epsilon, delta)
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
    charged = stewards.charge(conn, agreement_id, datasets, eps)
    conn.execute(insert(ledger).values(job_id=job_id, agreement_id=agreement_id, epsilon=eps, delta=dlt,
                                       state="reserved", created_at=now(), updated_at=now(),
                                       datasets=json.dumps(charged) if charged else None))
    return eps, dlt


def commit(conn: Connection, job_id: str) -> None:
    entry = conn.execute(select(ledger).where(ledger.c.job_id == job_id, ledger.c.state == "reserved")).first()
    if entry is None:
        return
    conn.execute(update(ledger).where(ledger.c.job_id == job_id).values(state="committed", updated_at=now()))
    row = conn.execute(select(agreements).where(agreements.c.id == entry.agreement_id)).one()
    if row.status == "active" and row.spent_epsilon >= row.budget_epsilon:
        # Compare-and-set on what the read above saw: two commits racing past it (PostgreSQL,
        # read committed) must not both record the transition, and a top-up committed since
        # (agreements.amend) must not be marked exhausted.
        changed = conn.execute(update(agreements).where(
            agreements.c.id == row.id, agreements.c.status == "active",
            agreements.c.spent_epsilon >= agreements.c.budget_epsilon).values(
                status="exhausted", updated_at=now())).rowcount
        if changed == 1:
            audit.append(conn, action="agreement.exhausted", role="system", agreement_id=row.id,
                         details={"spent_epsilon": row.spent_epsilon / EPSILON_UNIT})


def refund(conn: Connection, job_id: str) -> Units | None:
    """Give a reservation back; returns the amounts refunded (None: nothing was reserved)."""
    entry = conn.execute(select(ledger).where(ledger.c.job_id == job_id, ledger.c.state == "reserved")).first()
    if entry is None:
        return None
    conn.execute(update(ledger).where(ledger.c.job_id == job_id).values(state="refunded", updated_at=now()))
    conn.execute(update(agreements).where(agreements.c.id == entry.agreement_id).values(
        spent_epsilon=agreements.c.spent_epsilon - entry.epsilon, spent_delta=agreements.c.spent_delta - entry.delta,
        updated_at=now()))
    stewards.refund(conn, entry.agreement_id, json.loads(entry.datasets or "[]"), entry.epsilon)
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
    return units(entry.epsilon, entry.delta)


def spending(db: Database, top: int = 6) -> list[tuple[dict[str, Any], list[tuple[datetime, float]]]]:
    """Cumulative epsilon charged over time for the `top` agreements that spent most: ledger
    entries not refunded (reserved or committed), as the agreement's own `spent` counts them.
    One scan of the ledger, summed per hour in the database (per day beyond 200 hours)."""
    with reading(db) as conn:
        chosen = {r.id: dict(r._mapping) for r in conn.execute(
            select(agreements.c.id, agreements.c.purpose, agreements.c.developer_id, agreements.c.status,
                   agreements.c.budget_epsilon, agreements.c.spent_epsilon)
            .where(agreements.c.spent_epsilon > 0).order_by(agreements.c.spent_epsilon.desc()).limit(top))}
        if not chosen:
            return []
        hour = func.substr(ledger.c.created_at, 1, 13)  # '2026-11-22T14'
        rows = conn.execute(select(ledger.c.agreement_id, hour.label("bucket"), func.sum(ledger.c.epsilon).label("eps"))
                            .where(ledger.c.state != "refunded", ledger.c.agreement_id.in_(list(chosen)))
                            .group_by(ledger.c.agreement_id, hour).order_by(hour)).all()
    width = 10 if len({r.bucket for r in rows}) > 200 else 13  # days or hours
    sums: dict[str, dict[str, int]] = {a: {} for a in chosen}
    for r in rows:
        bucket = r.bucket[:width]
        sums[r.agreement_id][bucket] = sums[r.agreement_id].get(bucket, 0) + int(r.eps)
    out = []
    for agreement_id, about in chosen.items():
        total, points = 0, []
        for bucket, eps in sums[agreement_id].items():  # in time order, as the query sorted them
            total += eps
            points.append((datetime.fromisoformat(bucket), total / EPSILON_UNIT))
        about |= {"budget": about["budget_epsilon"] / EPSILON_UNIT, "spent": about["spent_epsilon"] / EPSILON_UNIT}
        if points:
            out.append((about, points))
    return out
