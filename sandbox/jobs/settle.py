"""The one way a job ends: its charge committed or refunded, its row updated and its audit event
appended, in the caller's transaction.

Whoever ends a job goes through `settle`: the worker's release or failure (run.py), the
developer's cancellation, recovery of a job whose server process died (leases.py). `claim`
locks the row first and hands it over only while the job is still open, so two of them racing
for the same job settle it once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from sandbox import audit, ledger
from sandbox.accounts import User
from sandbox.errors import QueryFailed
from sandbox.store import now
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, jobs

__all__ = ["ACTIVE", "FINAL", "Ending", "cancelled", "claim", "failed", "recovered", "released", "settle"]

ACTIVE = ("queued", "running")
FINAL = ("released", "rejected", "failed", "cancelled")


@dataclass(frozen=True)
class Ending:
    """How a job ends. `charge_kept`: data may have been read, so the reservation is committed;
    otherwise it is refunded."""

    status: Literal["released", "failed", "cancelled"]
    action: str
    outcome: str
    charge_kept: bool
    details: dict[str, Any] = field(default_factory=dict)
    by: User | None = None  # None: the sandbox itself
    result: str | None = None
    result_hash: str | None = None
    error: dict[str, Any] | None = None


def released(result: str, result_hash: str, details: dict[str, Any]) -> Ending:
    return Ending("released", "job.released", "ok", True, details | {"result_hash": result_hash},
                  result=result, result_hash=result_hash)


def failed(exc: QueryFailed) -> Ending:
    return Ending("failed", "job.failed", "failed", exc.data_touched, {"code": exc.code}, error=exc.to_dict())


def cancelled(was: str, by: User) -> Ending:
    """A running job may already have read data: its charge stays. A queued one is refunded."""
    return Ending("cancelled", "job.cancelled", "cancelled", was == "running", {"was": was}, by=by)


def recovered(was: str) -> Ending:
    """The job's server process died (its lease expired): the same rule as a cancellation."""
    touched = was == "running"
    error = QueryFailed(data_touched=touched).to_dict() | {
        "message": f"The server stopped while this job was {was}; run it again."}
    return Ending("failed", "job.recovered", "failed", touched, {"was": was}, error=error)


def claim(conn: Connection, job_id: str, *, owner: str | None = None, status: str | None = None) -> Any:
    """Lock the job's row; return it if it is still open (and `owner`'s, and `status`), else None."""
    row = conn.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).first()
    if row is None or row.status not in ACTIVE:
        return None
    if (owner is not None and row.owner != owner) or (status is not None and row.status != status):
        return None
    return row


def settle(conn: Connection, row: Any, ending: Ending) -> None:
    """End the claimed job `row`: ledger, job row and audit event, in `conn`'s transaction."""
    kept = ending.charge_kept
    refunded = None if kept else ledger.refund(conn, row.id)
    if kept:
        ledger.commit(conn, row.id)
    conn.execute(update(jobs).where(jobs.c.id == row.id).values(
        status=ending.status, result=ending.result, result_hash=ending.result_hash,
        error=json.dumps(ending.error, default=str) if ending.error else None, data_touched=kept,
        finished_at=now(), owner=None, lease_until=None,
        charge_epsilon=row.charge_epsilon if kept else 0, charge_delta=row.charge_delta if kept else 0))
    details = ending.details | {"charge_kept": kept}
    if kept:
        details |= {"charge_epsilon": row.charge_epsilon / EPSILON_UNIT, "charge_delta": row.charge_delta / DELTA_UNIT}
    if refunded is not None:
        details["refunded"] = refunded
    audit.append(conn, action=ending.action, outcome=ending.outcome, actor=ending.by.id if ending.by else None,
                 role=ending.by.role if ending.by else "system", job_id=row.id, agreement_id=row.agreement_id,
                 dataset=row.dataset, details=details)
