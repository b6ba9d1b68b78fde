"""Data stewards: each department decides the uses of its own data.

Every private dataset an agreement's request names is one *part* of the agreement
(`dataset_grants`), owned by the dataset policy's `owner`. A data steward (role `steward`, bound
to one owner) approves or rejects the parts of their organisation, possibly with narrower limits
for their dataset (a budget of its own, fewer columns, an earlier end, stricter output rules: a
larger minimum count, a coarser rounding, applied to every query that reads it), and may suspend a part
(one agreement, or every agreement that uses the dataset) and lift the suspension.

    part:  pending --steward approves--> approved     (suspended / resumed at any time after)
              +--steward rejects--> rejected          (the whole request is rejected)
           delegated: the owner had no steward when the request was made; the operator's
                      decision stands for it (and a steward appointed later may still suspend it)

An agreement becomes active when the operator has approved it (agreements.approve; until the
stewards have decided it is `awaiting`) and no part in its scope is pending. A job is admitted
only when every part it reads is in force (approved or delegated, not suspended, not past its
end, within its columns); the ledger charges each part's own budget next to the agreement's
(ledger.reserve). Every step is an audit event in the transaction of the change it records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from sandbox import audit
from sandbox.accounts import User
from sandbox.errors import AgreementInactive, Conflict, Forbidden, InvalidParameter, NotFound
from sandbox.store import Database, now, reading, writing
from sandbox.store.schema import EPSILON_UNIT, agreements, dataset_grants, users
from sandbox.store.units import budget_units

__all__ = ["IN_FORCE", "approve", "charge", "check", "open_parts", "output_rules", "parts", "pending", "queue",
           "refund", "reject", "resume", "suspend", "visible"]

MAX_RULE = 1_000_000  # a larger minimum count or rounding would suppress or round away every figure

IN_FORCE = ("approved", "delegated")  # a part a job may read (unless suspended or past its end)
OPEN = ("requested", "awaiting")  # agreement statuses in which a steward decides a part
LIVE = ("requested", "awaiting", "active", "exhausted", "expired")  # agreements a suspension applies to


def _require(user: User) -> str:
    if user.role != "steward" or not user.organisation:
        raise Forbidden("Only a data steward decides the parts of agreements that use their organisation's "
                        "datasets.")
    return user.organisation


def public(row: Any) -> dict[str, Any]:
    """A part as the API shows it: budgets as numbers, columns as a list."""
    values = dict(row._mapping)
    values["columns"] = json.loads(values["columns"]) if values["columns"] else None
    values["budget_epsilon"] = None if values["budget_epsilon"] is None else values["budget_epsilon"] / EPSILON_UNIT
    values["spent_epsilon"] = values["spent_epsilon"] / EPSILON_UNIT
    values["suspended"] = values["suspended_at"] is not None
    return values


# -- the parts of a request ----------------------------------------------------------------------


def open_parts(conn: Connection, agreement_id: str, datasets: Iterable[str], owners: Mapping[str, str]) -> None:
    """One part per private dataset of a new request (in its transaction): pending when its owner
    has a steward, delegated to the operator when not."""
    stewarded = set(conn.execute(select(users.c.organisation).where(
        users.c.role == "steward", users.c.active.is_(True))).scalars())
    for name in sorted(set(datasets)):
        owner = owners.get(name)
        if owner is None:  # public, or not in the catalog the caller knows: no part
            continue
        conn.execute(insert(dataset_grants).values(
            agreement_id=agreement_id, dataset=name, owner=owner, spent_epsilon=0,
            status="pending" if owner in stewarded else "delegated"))


def parts(db: Database, agreement_id: str) -> list[dict[str, Any]]:
    with reading(db) as conn:
        return [public(r) for r in conn.execute(select(dataset_grants).where(
            dataset_grants.c.agreement_id == agreement_id).order_by(dataset_grants.c.dataset))]


def pending(conn: Connection, agreement_id: str, scope: Iterable[str]) -> list[str]:
    """The owners whose steward has still to decide a part in `scope`."""
    return sorted(set(conn.execute(select(dataset_grants.c.owner).where(
        dataset_grants.c.agreement_id == agreement_id, dataset_grants.c.status == "pending",
        dataset_grants.c.dataset.in_(list(scope)))).scalars()))


def visible(user: User):
    """The agreements a steward may see: those with a part of their organisation (a clause)."""
    return agreements.c.id.in_(select(dataset_grants.c.agreement_id).where(
        dataset_grants.c.owner == user.organisation))


# -- a steward's decisions -----------------------------------------------------------------------


def _part(conn: Connection, steward: User, agreement_id: str, dataset: str, lock: bool = True) -> tuple[Any, Any]:
    organisation = _require(steward)
    query = select(agreements).where(agreements.c.id == agreement_id)
    agreement = conn.execute(query.with_for_update() if lock else query).first()
    row = conn.execute(select(dataset_grants).where(dataset_grants.c.agreement_id == agreement_id,
                                                    dataset_grants.c.dataset == dataset)).first()
    if agreement is None or row is None or row.owner != organisation:
        raise NotFound(f"Agreement {agreement_id} has no part for a dataset {dataset!r} of {organisation}; your "
                       "queue (GET /stewardship/parts) lists the parts you decide.", agreement_id=agreement_id)
    return agreement, row


def _pending_part(conn: Connection, steward: User, agreement_id: str, dataset: str, verb: str) -> tuple[Any, Any]:
    """The steward's part, locked, if it can still be decided: pending, in a request still open."""
    agreement, row = _part(conn, steward, agreement_id, dataset)
    if agreement.status not in OPEN or row.status != "pending":
        raise Conflict(f"The part of {dataset} in agreement {agreement_id} is {row.status} and the agreement "
                       f"{agreement.status}; only a pending part of a request waiting for decisions can be "
                       f"{verb} (to stop its use now, suspend it).", agreement_id=agreement_id)
    return agreement, row


def _decide(conn: Connection, steward: User, agreement_id: str, dataset: str, status: str, reason: str,
            values: Mapping[str, Any] | None = None) -> str:
    """Record the steward's decision on their part; returns its time."""
    stamp = now()
    conn.execute(update(dataset_grants).where(dataset_grants.c.agreement_id == agreement_id,
                                              dataset_grants.c.dataset == dataset).values(
        status=status, decided_by=steward.id, decided_at=stamp, reason=reason, **(values or {})))
    return stamp


def _public_part(conn: Connection, agreement_id: str, dataset: str) -> dict[str, Any]:
    return public(conn.execute(select(dataset_grants).where(dataset_grants.c.agreement_id == agreement_id,
                                                            dataset_grants.c.dataset == dataset)).one())


def approve(db: Database, steward: User, agreement_id: str, dataset: str, *, epsilon: float | None = None,
            columns: list[str] | None = None, valid_to: str | None = None, min_count: int | None = None,
            round_to: int | None = None, reason: str = "",
            known: Mapping[str, set[str]] | None = None) -> dict[str, Any]:
    """The steward's approval of their dataset's part, possibly narrower than requested: a budget
    for this dataset (`epsilon`, at most the request's), fewer `columns`, an earlier `valid_to`,
    output rules of their own (`min_count`, `round_to`) for every query that reads it.
    The last approval an operator-approved agreement waits for makes it active."""
    with writing(db) as conn:
        agreement, row = _pending_part(conn, steward, agreement_id, dataset, "approved")
        values = _limits(agreement, dataset, epsilon, columns, valid_to, known) | _rules(min_count, round_to)
        _decide(conn, steward, agreement_id, dataset, "approved", reason, values)
        audit.append(conn, action="dataset.approved", actor=steward.id, role=steward.role, agreement_id=agreement_id,
                     dataset=dataset, details={
                         "owner": row.owner, "epsilon": epsilon, "columns": columns, "valid_to": valid_to,
                         "min_count": min_count, "round_to": round_to, "reason": reason})
        _activate_if_ready(conn, agreement_id)
        return _public_part(conn, agreement_id, dataset)


def _limits(agreement: Any, dataset: str, epsilon: float | None, columns: list[str] | None, valid_to: str | None,
            known: Mapping[str, set[str]] | None) -> dict[str, Any]:
    """The part's own limits, checked against the request: never wider than it."""
    values: dict[str, Any] = {}
    if epsilon is not None:
        if not (math.isfinite(epsilon) and 0 < epsilon <= agreement.requested_epsilon):
            raise InvalidParameter(f"A dataset's budget must be in (0, the requested epsilon "
                                   f"{agreement.requested_epsilon:g}]; leave it out to let the agreement's budget "
                                   "alone bound it.", parameter="epsilon")
        values["budget_epsilon"] = budget_units(epsilon, 0.0)[0]
    if columns is not None:
        requested = json.loads(agreement.requested_datasets or agreement.datasets).get(dataset)
        allowed = set(requested) if requested is not None else (known or {}).get(dataset)
        outside = sorted(set(columns) - allowed) if allowed is not None else []
        if not columns or outside:
            raise InvalidParameter(
                f"Name at least one column of {dataset}, all of them requested or queryable"
                + (f" ({', '.join(outside)} are not)" if outside else "") + "; leave columns out for every column "
                "requested.", parameter="columns")
        values["columns"] = json.dumps(sorted(set(columns)))
    if valid_to is not None:
        if not agreement.valid_from < valid_to <= agreement.valid_to:
            raise InvalidParameter(f"valid_to must lie after the start ({agreement.valid_from}) and no later than "
                                   f"the request's end ({agreement.valid_to}).", parameter="valid_to")
        values["valid_to"] = valid_to
    return values


def _rules(min_count: int | None, round_to: int | None) -> dict[str, Any]:
    """The part's own output rules: they only add to the agreement's and the policy's (the
    strictest rule wins, planner), so any whole number from 1 is a valid choice."""
    values: dict[str, Any] = {}
    for name, value in (("min_count", min_count), ("round_to", round_to)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RULE:
            raise InvalidParameter(f"{name} must be a whole number from 1 to {MAX_RULE:,}; leave it out to keep the "
                                   "agreement's and the dataset policy's rule.", parameter=name)
        values[name] = value
    return values


def _activate_if_ready(conn: Connection, agreement_id: str) -> None:
    """An operator-approved agreement whose last pending part was just approved becomes active."""
    agreement = conn.execute(select(agreements).where(agreements.c.id == agreement_id)).one()
    if agreement.status != "awaiting" or pending(conn, agreement_id, json.loads(agreement.datasets)):
        return
    status = "exhausted" if agreement.spent_epsilon >= agreement.budget_epsilon else "active"
    conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(status=status, updated_at=now()))
    audit.append(conn, action="agreement.activated", role="system", agreement_id=agreement_id,
                 details={"approved_by": _approvals(conn, agreement_id)})


def _approvals(conn: Connection, agreement_id: str) -> dict[str, str]:
    """Each part's status, by dataset: what the activation rests on."""
    return {r.dataset: r.status for r in conn.execute(select(dataset_grants.c.dataset, dataset_grants.c.status)
                                                      .where(dataset_grants.c.agreement_id == agreement_id))}


def reject(db: Database, steward: User, agreement_id: str, dataset: str, reason: str) -> dict[str, Any]:
    """The steward refuses their dataset's part: the request is rejected (a developer may request
    again without that dataset), with the steward's reason."""
    if not reason.strip():
        raise InvalidParameter("Give a reason; the developer, the operator and the auditors will read it.",
                               parameter="reason")
    with writing(db) as conn:
        _, row = _pending_part(conn, steward, agreement_id, dataset, "rejected")
        stamp = _decide(conn, steward, agreement_id, dataset, "rejected", reason)
        audit.append(conn, action="dataset.rejected", actor=steward.id, role=steward.role, agreement_id=agreement_id,
                     dataset=dataset, details={"owner": row.owner, "reason": reason})
        conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(
            status="rejected", decided_by=steward.id, decision_reason=reason, decided_at=stamp, updated_at=stamp))
        audit.append(conn, action="agreement.rejected", actor=steward.id, role=steward.role,
                     agreement_id=agreement_id, details={"reason": reason, "dataset": dataset, "owner": row.owner})
        return _public_part(conn, agreement_id, dataset)


def suspend(db: Database, steward: User, dataset: str, reason: str, *,
            agreement_id: str | None = None) -> list[dict[str, Any]]:
    """Stop the use of `dataset` under one agreement, or under every agreement (None), from the
    next job on. Returns the parts suspended now."""
    return _switch(db, steward, dataset, reason, agreement_id, suspend=True)


def resume(db: Database, steward: User, dataset: str, reason: str, *,
           agreement_id: str | None = None) -> list[dict[str, Any]]:
    """Lift a suspension (one agreement, or all of the dataset's)."""
    return _switch(db, steward, dataset, reason, agreement_id, suspend=False)


def _switch(db: Database, steward: User, dataset: str, reason: str, agreement_id: str | None, *,
            suspend: bool) -> list[dict[str, Any]]:
    organisation = _require(steward)
    verb = "suspend" if suspend else "resume"
    if not reason.strip():
        raise InvalidParameter(f"Give a reason to {verb} the use of {dataset}; the developer, the operator and the "
                               "auditors will read it.", parameter="reason")
    with writing(db) as conn:
        where = [dataset_grants.c.dataset == dataset, dataset_grants.c.owner == organisation,
                 dataset_grants.c.suspended_at.is_(None) if suspend else dataset_grants.c.suspended_at.isnot(None)]
        if agreement_id is not None:
            _part(conn, steward, agreement_id, dataset)
            where.append(dataset_grants.c.agreement_id == agreement_id)
        chosen = conn.execute(select(dataset_grants.c.agreement_id).join(
            agreements, agreements.c.id == dataset_grants.c.agreement_id).where(
            *where, agreements.c.status.in_(LIVE)).order_by(dataset_grants.c.agreement_id)).scalars().all()
        if agreement_id is not None and not chosen:
            raise Conflict(f"The use of {dataset} under agreement {agreement_id} is "
                           f"{'already suspended' if suspend else 'not suspended'}, or the agreement has ended.",
                           agreement_id=agreement_id)
        stamp = now()
        values = ({"suspended_at": stamp, "suspended_by": steward.id, "suspend_reason": reason} if suspend
                  else {"suspended_at": None, "suspended_by": None, "suspend_reason": None})
        done = []
        for agreement in chosen:
            conn.execute(update(dataset_grants).where(dataset_grants.c.agreement_id == agreement,
                                                      dataset_grants.c.dataset == dataset).values(**values))
            audit.append(conn, action=f"dataset.{'suspended' if suspend else 'resumed'}", actor=steward.id,
                         role=steward.role, agreement_id=agreement, dataset=dataset,
                         details={"owner": organisation, "reason": reason,
                                  "scope": "agreement" if agreement_id else "all agreements"})
            done.append(_public_part(conn, agreement, dataset))
        return done


# -- what a steward sees -------------------------------------------------------------------------


def queue(db: Database, steward: User, *, status: str | None = None) -> list[dict[str, Any]]:
    """The parts of the steward's organisation (`status`: only those), each with its agreement's
    purpose, legal basis, status, validity and requested budget: newest request first."""
    organisation = _require(steward)
    query = (select(dataset_grants, agreements.c.purpose, agreements.c.legal_basis,
                    agreements.c.status.label("agreement_status"), agreements.c.valid_from,
                    agreements.c.valid_to.label("agreement_valid_to"), agreements.c.requested_epsilon,
                    agreements.c.requested_datasets, agreements.c.created_at)
             .join(agreements, agreements.c.id == dataset_grants.c.agreement_id)
             .where(dataset_grants.c.owner == organisation)
             .order_by(agreements.c.created_at.desc(), dataset_grants.c.dataset))
    if status:
        query = query.where(dataset_grants.c.status == status)
    with reading(db) as conn:
        rows = [public(r) for r in conn.execute(query)]
    for row in rows:
        row["requested_columns"] = json.loads(row.pop("requested_datasets") or "{}").get(row["dataset"])
    return rows


# -- at run time ---------------------------------------------------------------------------------


def check(conn: Connection, agreement_id: str, touched: Mapping[str, Iterable[str]]) -> None:
    """Every part a job reads must be in force now: approved (or delegated), not suspended, not
    past the steward's end, and within the steward's columns. Reads only, in the job's transaction."""
    if not touched:
        return
    rows = {r.dataset: r for r in conn.execute(select(dataset_grants).where(
        dataset_grants.c.agreement_id == agreement_id, dataset_grants.c.dataset.in_(list(touched))))}
    stamp = now()
    for dataset, columns in sorted(touched.items()):
        row = rows.get(dataset)
        if row is None:  # an agreement made before stewards: the operator's decision stands
            continue
        if row.suspended_at is not None:
            raise AgreementInactive(
                f"The data steward of {row.owner} suspended the use of {dataset} under agreement {agreement_id} on "
                f"{row.suspended_at[:19].replace('T', ' ')} UTC (their reason: {row.suspend_reason}); queries that "
                "read it are refused until they resume it. Ask them, or query the other datasets.",
                agreement_id=agreement_id, status="suspended", dataset=dataset)
        if row.status not in IN_FORCE:
            raise AgreementInactive(f"The part of {dataset} in agreement {agreement_id} is {row.status}: the data "
                                    f"steward of {row.owner} has not approved it; wait for their decision.",
                                    agreement_id=agreement_id, status=row.status, dataset=dataset)
        if row.valid_to is not None and stamp >= row.valid_to:
            raise AgreementInactive(f"The data steward of {row.owner} approved {dataset} under agreement "
                                    f"{agreement_id} until {row.valid_to}; ask them to extend it.",
                                    agreement_id=agreement_id, status="expired", dataset=dataset)
        allowed = json.loads(row.columns) if row.columns else None
        outside = sorted(set(columns) - set(allowed)) if allowed is not None else []
        if outside:
            raise Forbidden(f"The data steward of {row.owner} approved only column(s) {', '.join(allowed)} of "
                            f"{dataset} under agreement {agreement_id}, not {', '.join(outside)}.",
                            agreement_id=agreement_id)


def output_rules(conn: Connection, agreement_id: str, datasets: Iterable[str]) -> tuple[int, int]:
    """The stewards' output rules over the parts a job reads: the largest minimum count and the
    least common multiple of the roundings (1 and 1 when no steward set any), as the planner
    combines a policy's rules with an agreement's."""
    rows = conn.execute(select(dataset_grants.c.min_count, dataset_grants.c.round_to).where(
        dataset_grants.c.agreement_id == agreement_id, dataset_grants.c.dataset.in_(list(datasets)))).all()
    return (max([1, *(r.min_count for r in rows if r.min_count)]),
            math.lcm(1, *(r.round_to for r in rows if r.round_to)))


def charge(conn: Connection, agreement_id: str, datasets: Iterable[str], epsilon: int) -> list[str]:
    """Add a reservation to each part's spending (compare-and-set against a part's own budget);
    returns the datasets charged. Raises BudgetExhausted, naming the dataset, when one is spent."""
    from sandbox.errors import BudgetExhausted

    charged = []
    for dataset in sorted(set(datasets)):
        row = conn.execute(select(dataset_grants).where(dataset_grants.c.agreement_id == agreement_id,
                                                        dataset_grants.c.dataset == dataset)).first()
        if row is None:
            continue
        cap = dataset_grants.c.budget_epsilon
        changed = conn.execute(update(dataset_grants).where(
            dataset_grants.c.agreement_id == agreement_id, dataset_grants.c.dataset == dataset,
            cap.is_(None) | (dataset_grants.c.spent_epsilon + epsilon <= cap))
            .values(spent_epsilon=dataset_grants.c.spent_epsilon + epsilon)).rowcount
        if changed != 1:
            left = max(row.budget_epsilon - row.spent_epsilon, 0) / EPSILON_UNIT
            raise BudgetExhausted(
                f"This query needs epsilon {epsilon / EPSILON_UNIT:g} of {dataset}, but the data steward of "
                f"{row.owner} granted {row.budget_epsilon / EPSILON_UNIT:g} for it under agreement {agreement_id} "
                f"and {left:g} is left. Ask for less, or ask them for more.",
                agreement_id=agreement_id, dataset=dataset, remaining_epsilon=left, remaining_delta=0.0)
        charged.append(dataset)
    return charged


def refund(conn: Connection, agreement_id: str, datasets: Iterable[str], epsilon: int) -> None:
    for dataset in datasets:
        conn.execute(update(dataset_grants).where(
            dataset_grants.c.agreement_id == agreement_id, dataset_grants.c.dataset == dataset)
            .values(spent_epsilon=dataset_grants.c.spent_epsilon - epsilon))
