"""Data-use agreements: requested by a developer, decided by an operator, checked at run time.

    requested --approve--> active --revoke--> revoked
        |                    |--(valid_to passed)--> expired
        +--reject--> rejected +--(budget spent)----> exhausted (ledger.commit)

Every transition is an audit event with who, when and why, in the same transaction; an
approval's event carries the budget it grants in store units (`budget`), which `verify`
(audit/budgets.py) holds the agreement's row to. Each action takes a `Database` (sandbox/store).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from sqlalchemy import Connection, insert, select, update

from sandbox import audit
from sandbox.accounts import User, require_licence
from sandbox.errors import AgreementInactive, BudgetExhausted, Conflict, Forbidden, InvalidParameter, NotFound
from sandbox.store import Database, now, reading, writing
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements
from sandbox.store.units import budget_units

__all__ = ["approve", "exhausted", "expire", "get", "list_for", "public", "reject", "request", "revoke", "usable"]

Scope = dict[str, list[str] | None]  # dataset -> columns in scope (None: all queryable columns)


def _row(conn: Connection, agreement_id: str, lock: bool = False):
    query = select(agreements).where(agreements.c.id == agreement_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"No agreement {agreement_id}.", agreement_id=agreement_id)
    return row


def public(row) -> dict[str, Any]:
    """The wire shape of an agreement, with budgets as numbers and what is left."""
    values = dict(row._mapping)
    values["datasets"] = json.loads(values["datasets"])
    for key, unit in (
        ("budget_epsilon", EPSILON_UNIT),
        ("spent_epsilon", EPSILON_UNIT),
        ("budget_delta", DELTA_UNIT),
        ("spent_delta", DELTA_UNIT),
    ):
        values[key] = values[key] / unit
    values["remaining_epsilon"] = max(values["budget_epsilon"] - values["spent_epsilon"], 0.0)
    values["remaining_delta"] = max(values["budget_delta"] - values["spent_delta"], 0.0)
    return values


def _check_budget(epsilon: float, delta: float) -> None:
    if not (math.isfinite(epsilon) and 0 < epsilon <= 100):
        raise InvalidParameter("epsilon must be a finite number in (0, 100].", parameter="epsilon")
    if not (math.isfinite(delta) and 0 <= delta < 1e-3):
        raise InvalidParameter("delta must be in [0, 0.001).", parameter="delta")


def request(
    db: Database,
    developer: User,
    *,
    purpose: str,
    legal_basis: str,
    datasets: Scope,
    valid_from: str,
    valid_to: str,
    epsilon: float,
    delta: float,
    known: dict[str, set[str]],
) -> dict[str, Any]:
    if developer.role != "developer":
        raise Forbidden("Only licensed developers request agreements.")
    _check_budget(epsilon, delta)
    if not purpose.strip() or not legal_basis.strip():
        raise InvalidParameter("State the purpose and the legal basis of the data use.", parameter="purpose")
    if valid_to <= valid_from:
        raise InvalidParameter("valid_to must be after valid_from.", parameter="valid_to")
    _check_scope(datasets, known)
    with writing(db) as conn:
        require_licence(conn, developer)
        return _insert_request(conn, developer, purpose, legal_basis, datasets, valid_from, valid_to, epsilon, delta)


def _insert_request(conn: Connection, developer: User, purpose: str, legal_basis: str, datasets: Scope,
                    valid_from: str, valid_to: str, epsilon: float, delta: float) -> dict[str, Any]:
    stamp = now()
    values = {
        "id": str(uuid.uuid4()),
        "developer_id": developer.id,
        "status": "requested",
        "purpose": purpose,
        "legal_basis": legal_basis,
        "datasets": json.dumps(datasets, sort_keys=True),
        "valid_from": valid_from,
        "valid_to": valid_to,
        "requested_epsilon": epsilon,
        "requested_delta": delta,
        "budget_epsilon": 0,
        "budget_delta": 0,
        "spent_epsilon": 0,
        "spent_delta": 0,
        "min_count": 0,
        "round_to": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }
    conn.execute(insert(agreements).values(**values))
    audit.append(
        conn,
        action="agreement.requested",
        actor=developer.id,
        role=developer.role,
        agreement_id=values["id"],
        details={
            "purpose": purpose,
            "legal_basis": legal_basis,
            "datasets": datasets,
            "epsilon": epsilon,
            "delta": delta,
            "valid_from": valid_from,
            "valid_to": valid_to,
        },
    )
    return public(_row(conn, values["id"]))


def _check_scope(datasets: Scope, known: dict[str, set[str]]) -> None:
    if not datasets:
        raise InvalidParameter("Name at least one dataset.", parameter="datasets")
    for name, columns in datasets.items():
        if name not in known:
            raise InvalidParameter(f"Unknown dataset {name!r}; see GET /datasets.", parameter="datasets")
        unknown = set(columns or ()) - known[name]
        if unknown:
            raise InvalidParameter(
                f"Dataset {name!r} has no column(s) {', '.join(sorted(unknown))}.", parameter="datasets"
            )


def approve(
    db: Database,
    operator: User,
    agreement_id: str,
    *,
    epsilon: float | None = None,
    delta: float | None = None,
    per_query_epsilon: float | None = None,
    datasets: Scope | None = None,
    valid_to: str | None = None,
    min_count: int = 0,
    round_to: int = 1,
    reason: str = "",
) -> dict[str, Any]:
    if not operator.manages:
        raise Forbidden("Only operators decide agreements.")
    decision = {"epsilon": epsilon, "delta": delta, "per_query_epsilon": per_query_epsilon, "datasets": datasets,
                "valid_to": valid_to, "min_count": min_count, "round_to": round_to, "reason": reason}
    with writing(db) as conn:
        row = _row(conn, agreement_id, lock=True)
        if row.status != "requested":
            raise Conflict(f"Agreement {agreement_id} is {row.status}; only a requested agreement can be approved.")
        values = _approval(row, **decision)
        conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(**values, decided_by=operator.id,
                                                                                    updated_at=now()))
        audit.append(
            conn,
            action="agreement.approved",
            actor=operator.id,
            role=operator.role,
            agreement_id=agreement_id,
            details={
                "epsilon": decision["epsilon"] if epsilon is not None else row.requested_epsilon,
                "delta": decision["delta"] if delta is not None else row.requested_delta,
                "budget": {"epsilon": values["budget_epsilon"], "delta": values["budget_delta"]},
                "per_query_epsilon": per_query_epsilon,
                "datasets": json.loads(values["datasets"]),
                "valid_to": values["valid_to"],
                "min_count": min_count,
                "round_to": round_to,
                "reason": reason,
                "requested_epsilon": row.requested_epsilon,
            },
        )
        return public(_row(conn, agreement_id))


def _approval(row: Any, *, epsilon: float | None, delta: float | None, per_query_epsilon: float | None,
              datasets: Scope | None, valid_to: str | None, min_count: int, round_to: int,
              reason: str) -> dict[str, Any]:
    """The agreement's new values, after checking the decision against the request."""
    epsilon = row.requested_epsilon if epsilon is None else epsilon
    delta = row.requested_delta if delta is None else delta
    _check_budget(epsilon, delta)
    if epsilon > row.requested_epsilon or delta > row.requested_delta:
        raise InvalidParameter("An approval may grant less budget than requested, never more.", parameter="epsilon")
    requested: Scope = json.loads(row.datasets)
    scope = requested if datasets is None else datasets
    for name, columns in scope.items():
        if name not in requested or (
            requested[name] is not None and not set(columns or requested[name]) <= set(requested[name])
        ):
            raise InvalidParameter("An approval may narrow the requested scope, never widen it.", parameter="datasets")
    if per_query_epsilon is not None and not 0 < per_query_epsilon <= epsilon:
        raise InvalidParameter("per_query_epsilon must be in (0, epsilon].", parameter="per_query_epsilon")
    valid_to = valid_to or row.valid_to
    if not row.valid_from < valid_to <= row.valid_to:
        raise InvalidParameter(
            f"valid_to must lie after valid_from ({row.valid_from}) and no later than requested "
            f"({row.valid_to}): an approval may shorten the window, never widen it.",
            parameter="valid_to",
        )
    if min_count < 0 or round_to < 1:
        raise InvalidParameter("min_count must be >= 0 and round_to >= 1.", parameter="min_count")
    budget_epsilon, budget_delta = budget_units(epsilon, delta)
    return {
        "status": "active",
        "budget_epsilon": budget_epsilon,
        "budget_delta": budget_delta,
        "per_query_epsilon": per_query_epsilon,
        "datasets": json.dumps(scope, sort_keys=True),
        "valid_to": valid_to,
        "min_count": min_count,
        "round_to": round_to,
        "decision_reason": reason,
    }


def exhausted(row) -> BudgetExhausted:
    return BudgetExhausted(
        f"Agreement {row.id} has spent its whole budget (epsilon {row.budget_epsilon / EPSILON_UNIT:g}). Identical "
        "queries still return their earlier releases for free; for new questions ask the operator for more budget.",
        agreement_id=row.id,
        remaining_epsilon=0.0,
        remaining_delta=0.0,
    )


def expire(conn: Connection, agreement_id: str) -> bool:
    """Record that an agreement's validity ended (compare-and-set, audited once)."""
    stamp = now()
    changed = conn.execute(
        update(agreements)
        .where(
            agreements.c.id == agreement_id,
            agreements.c.status.in_(("active", "exhausted")),
            agreements.c.valid_to <= stamp,
        )
        .values(status="expired", updated_at=stamp)
    ).rowcount
    if changed:
        valid_to = conn.execute(select(agreements.c.valid_to).where(agreements.c.id == agreement_id)).scalar_one()
        audit.append(
            conn, action="agreement.expired", role="system", agreement_id=agreement_id, details={"valid_to": valid_to}
        )
    return bool(changed)


def _decide(db: Database, operator: User, agreement_id: str, *, to: str, allowed: str, reason: str) -> dict[str, Any]:
    if not operator.manages:
        raise Forbidden("Only operators decide agreements.")
    if not reason.strip():
        raise InvalidParameter("Give a reason; the developer and the auditors will read it.", parameter="reason")
    with writing(db) as conn:
        row = _row(conn, agreement_id, lock=True)
        if row.status != allowed:
            raise Conflict(f"Agreement {agreement_id} is {row.status}; only a {allowed} agreement can be {to}.")
        conn.execute(
            update(agreements)
            .where(agreements.c.id == agreement_id)
            .values(status=to, decided_by=operator.id, decision_reason=reason, updated_at=now())
        )
        audit.append(
            conn,
            action=f"agreement.{to}",
            actor=operator.id,
            role=operator.role,
            agreement_id=agreement_id,
            details={"reason": reason},
        )
        return public(_row(conn, agreement_id))


def reject(db: Database, operator: User, agreement_id: str, reason: str) -> dict[str, Any]:
    return _decide(db, operator, agreement_id, to="rejected", allowed="requested", reason=reason)


def revoke(db: Database, operator: User, agreement_id: str, reason: str) -> dict[str, Any]:
    return _decide(db, operator, agreement_id, to="revoked", allowed="active", reason=reason)


def get(db: Database, user: User, agreement_id: str) -> dict[str, Any]:
    with reading(db) as conn:
        row = _row(conn, agreement_id)
    if user.role == "developer" and row.developer_id != user.id:
        raise NotFound(f"No agreement {agreement_id}.", agreement_id=agreement_id)  # never confirm others' ids
    return public(row)


def list_for(db: Database, user: User, status: str | None = None) -> list[dict[str, Any]]:
    query = select(agreements).order_by(agreements.c.created_at)
    if user.role == "developer":
        query = query.where(agreements.c.developer_id == user.id)
    if status:
        query = query.where(agreements.c.status == status)
    with reading(db) as conn:
        return [public(r) for r in conn.execute(query)]


def usable(
    conn: Connection,
    developer: User,
    agreement_id: str,
    touched: dict[str, list[str]],
    *,
    allow_exhausted: bool = False,
):
    """The agreement in force *now* for this job, or a clear refusal. Reads only: an expiry is
    recorded by `expire` when a refused job is recorded."""
    row = _row(conn, agreement_id)
    if row.developer_id != developer.id:
        raise NotFound(f"No agreement {agreement_id}.", agreement_id=agreement_id)
    require_licence(conn, developer)
    stamp = now()
    if row.status in ("active", "exhausted") and stamp >= row.valid_to:
        raise AgreementInactive(
            f"Agreement {agreement_id} expired on {row.valid_to}; request a new agreement.",
            agreement_id=agreement_id,
            status="expired",
        )
    if row.status == "exhausted" and not allow_exhausted:
        raise exhausted(row)
    if row.status not in ("active", "exhausted"):
        hint = {
            "requested": "wait for an operator's decision",
            "expired": "request a new agreement",
            "revoked": "contact the operator",
            "rejected": "read the operator's reason and request again",
        }.get(row.status, "contact the operator")
        raise AgreementInactive(
            f"Agreement {agreement_id} is {row.status}; {hint}.", agreement_id=agreement_id, status=row.status
        )
    if stamp < row.valid_from:
        raise AgreementInactive(
            f"Agreement {agreement_id} starts on {row.valid_from}.", agreement_id=agreement_id, status=row.status
        )
    scope: Scope = json.loads(row.datasets)
    for dataset, columns in touched.items():  # one agreement must cover every dataset a query fuses
        if dataset not in scope:
            raise Forbidden(f"Agreement {agreement_id} does not cover dataset {dataset!r} (it covers "
                            f"{', '.join(sorted(scope))}); request an agreement that does.", agreement_id=agreement_id)
        allowed = scope[dataset]
        outside = sorted(set(columns) - set(allowed)) if allowed is not None else []
        if outside:
            raise Forbidden(f"Agreement {agreement_id} does not cover column(s) {', '.join(outside)} of {dataset!r}.",
                            agreement_id=agreement_id)
    return row
