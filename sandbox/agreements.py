"""Data-use agreements: requested by a developer, decided by an operator, checked at run time.

    requested --approve--> active --revoke--> revoked
        |                    |--(valid_to passed)--> expired   --amend (a later end)--> active
        +--reject--> rejected +--(budget spent)----> exhausted --amend (more budget)--> active
        |        --approve--> awaiting --(the last data steward approves)--> active
        +--a data steward rejects their dataset's part--> rejected

A request's private datasets are its *parts* (sandbox/stewards.py): the data steward of each
dataset's owner approves or rejects theirs. The operator's approval makes an agreement active
only when no part in its scope is pending; until then it is `awaiting`.

An amendment is an operator's decision on an agreement already in force (active, exhausted or
expired): more (or less, never below what is spent) budget, a later end, another per-query cap,
a narrower or wider scope within what the developer requested. Anything beyond the request is a
new request. Every transition is an audit event with who, when and why, in the same transaction;
an approval's and an amendment's event carry the budget granted from then on in store units
(`budget`), which `verify` (audit/budgets.py) holds the agreement's row to. Each action takes a
`Database` (sandbox/store). `search` is the history of decisions: filters, text search, pages.
"""

from __future__ import annotations

import difflib
import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from sandbox import audit, stewards
from sandbox.accounts import User, require_licence
from sandbox.errors import AgreementInactive, BudgetExhausted, Conflict, Forbidden, InvalidParameter, NotFound
from sandbox.store import Database, now, reading, writing
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements, licences, users
from sandbox.store.schema import audit as events
from sandbox.store.units import budget_units

__all__ = ["DECIDED", "Search", "amend", "approve", "decisions", "did_you_mean", "exhausted", "expire", "get",
           "list_for", "public", "reject", "request", "revoke", "search", "usable"]

Scope = dict[str, list[str] | None]  # dataset -> columns in scope (None: all queryable columns)
DECIDED = ("awaiting", "active", "exhausted", "expired", "revoked", "rejected")  # every status after a decision


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
    requested = values.get("requested_datasets")
    values["requested_datasets"] = json.loads(requested) if requested else values["datasets"]
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


def _full(conn: Connection, agreement_id: str) -> dict[str, Any]:
    """One agreement as an action returns it: with its parts (each private dataset's steward decision)."""
    return public(_row(conn, agreement_id)) | {"parts": stewards.parts(conn, agreement_id)}


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
    owners: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`owners` (each private dataset's owner, from the catalog) opens one part per dataset for its
    data steward to decide (sandbox/stewards.py); without it the operator alone decides."""
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
        return _insert_request(conn, developer, purpose, legal_basis, datasets, valid_from, valid_to, epsilon, delta,
                               owners or {})


def _insert_request(conn: Connection, developer: User, purpose: str, legal_basis: str, datasets: Scope,
                    valid_from: str, valid_to: str, epsilon: float, delta: float,
                    owners: dict[str, str]) -> dict[str, Any]:
    stamp = now()
    values = {
        "id": str(uuid.uuid4()),
        "developer_id": developer.id,
        "status": "requested",
        "purpose": purpose,
        "legal_basis": legal_basis,
        "datasets": json.dumps(datasets, sort_keys=True),
        "requested_datasets": json.dumps(datasets, sort_keys=True),
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
    stewards.open_parts(conn, values["id"], datasets, owners)
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
    return _full(conn, values["id"])


def _check_scope(datasets: Scope, known: dict[str, set[str]]) -> None:
    if not datasets:
        raise InvalidParameter("Name at least one dataset.", parameter="datasets")
    for name, columns in datasets.items():
        if name not in known:
            raise InvalidParameter(f"Unknown dataset {name!r}.{did_you_mean([name], known)} The catalog "
                                   "(GET /datasets) lists every dataset.", parameter="datasets")
        _check_columns(name, columns, known[name])


def _check_columns(dataset: str, columns: Iterable[str] | None, queryable: set[str]) -> None:
    unknown = sorted(set(columns or ()) - queryable)
    if unknown:
        raise InvalidParameter(
            f"Dataset {dataset!r} has no queryable column(s) {', '.join(unknown)}."
            + (did_you_mean(unknown, queryable) or f" Its queryable columns: {', '.join(sorted(queryable))}."),
            parameter="datasets")


def did_you_mean(names: Sequence[str], choices: Iterable[str]) -> str:
    """' Did you mean 'residents'?' for near misses (difflib), '' when nothing is close."""
    options = sorted(choices)
    found = [(name, close[0]) for name in names if (close := difflib.get_close_matches(name, options, n=1))]
    if not found:
        return ""
    if len(names) == 1:
        return f" Did you mean {found[0][1]!r}?"
    return " Did you mean " + ", ".join(f"{match!r} for {name!r}" for name, match in found) + "?"


def _within_request(scope: Scope, requested: Scope, known: dict[str, set[str]] | None, *, beyond: str) -> Scope:
    """`scope` checked against the request: each dataset requested, each column requested (or,
    when all were, queryable). A dataset given as None gets the columns it was requested with,
    so leaving columns out never widens a scope. `beyond` says what to do instead."""
    if not scope:
        raise InvalidParameter("Keep at least one dataset in scope; to end the agreement, revoke it.",
                               parameter="datasets")
    checked: Scope = {}
    for name, columns in scope.items():
        if name not in requested:
            raise InvalidParameter(
                f"Dataset {name!r} was not requested (the request names {', '.join(sorted(requested))})."
                f"{did_you_mean([name], requested)} {beyond}", parameter="datasets")
        allowed = requested[name]
        if columns is None:
            checked[name] = None if allowed is None else sorted(allowed)
            continue
        if allowed is not None and (outside := sorted(set(columns) - set(allowed))):
            raise InvalidParameter(
                f"Column(s) {', '.join(outside)} of {name!r} were not requested (the request names "
                f"{', '.join(allowed)}).{did_you_mean(outside, allowed)} {beyond}", parameter="datasets")
        if allowed is None and known is not None and name in known:
            _check_columns(name, columns, known[name])
        checked[name] = sorted(set(columns))
    return checked


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
    known: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """`known` (each dataset's queryable columns) checks the columns of a narrowed scope whose
    request named all columns."""
    if not operator.manages:
        raise Forbidden("Only operators decide agreements.")
    decision = {"epsilon": epsilon, "delta": delta, "per_query_epsilon": per_query_epsilon, "datasets": datasets,
                "valid_to": valid_to, "min_count": min_count, "round_to": round_to, "reason": reason}
    with writing(db) as conn:
        row = _row(conn, agreement_id, lock=True)
        if row.status != "requested":
            raise Conflict(f"Agreement {agreement_id} is {row.status}; only a requested agreement can be approved"
                           + (" (amend it instead)." if row.status in AMENDABLE else "."))
        values = _approval(row, **decision, known=known)
        waiting = stewards.pending(conn, agreement_id, json.loads(values["datasets"]))
        if waiting:
            values["status"] = "awaiting"
        stamp = now()
        conn.execute(update(agreements).where(agreements.c.id == agreement_id).values(
            **values, decided_by=operator.id, decided_at=stamp, updated_at=stamp))
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
                "awaiting": waiting,
            },
        )
        return _full(conn, agreement_id)


def _approval(row: Any, *, epsilon: float | None, delta: float | None, per_query_epsilon: float | None,
              datasets: Scope | None, valid_to: str | None, min_count: int, round_to: int,
              reason: str, known: dict[str, set[str]] | None) -> dict[str, Any]:
    """The agreement's new values, after checking the decision against the request."""
    epsilon = row.requested_epsilon if epsilon is None else epsilon
    delta = row.requested_delta if delta is None else delta
    _check_budget(epsilon, delta)
    if epsilon > row.requested_epsilon or delta > row.requested_delta:
        raise InvalidParameter("An approval may grant less budget than requested, never more; approve what was "
                               "requested, then amend the agreement to top it up.", parameter="epsilon")
    requested = _requested_scope(row)
    scope = requested if datasets is None else _within_request(
        datasets, requested, known, beyond="An approval may narrow the requested scope, never widen it; a wider "
        "scope is a new request.")
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


def _requested_scope(row: Any) -> Scope:
    return json.loads(row.requested_datasets or row.datasets)


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
            raise Conflict(f"Agreement {agreement_id} is {row.status}; only {_a(allowed)} agreement can be {to}.")
        stamp = now()
        conn.execute(
            update(agreements)
            .where(agreements.c.id == agreement_id)
            .values(status=to, decided_by=operator.id, decision_reason=reason, decided_at=stamp, updated_at=stamp)
        )
        audit.append(
            conn,
            action=f"agreement.{to}",
            actor=operator.id,
            role=operator.role,
            agreement_id=agreement_id,
            details={"reason": reason},
        )
        return _full(conn, agreement_id)


def _a(word: str) -> str:
    """'a requested', 'an active': the article English wants before `word`."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def reject(db: Database, operator: User, agreement_id: str, reason: str) -> dict[str, Any]:
    return _decide(db, operator, agreement_id, to="rejected", allowed="requested", reason=reason)


def revoke(db: Database, operator: User, agreement_id: str, reason: str) -> dict[str, Any]:
    return _decide(db, operator, agreement_id, to="revoked", allowed="active", reason=reason)


AMENDABLE = ("active", "exhausted", "expired")  # in force, or ended by its budget or its end date
NEW_REQUEST = "the developer requests a new agreement for anything beyond the request"


def amend(
    db: Database,
    operator: User,
    agreement_id: str,
    *,
    reason: str,
    epsilon: float | None = None,
    epsilon_add: float | None = None,
    delta: float | None = None,
    delta_add: float | None = None,
    per_query_epsilon: float | None = None,
    valid_to: str | None = None,
    datasets: Scope | None = None,
    known: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """An operator's amendment: a new total budget (`epsilon`, `delta`) or a top-up (`epsilon_add`,
    `delta_add`), another end date, per-query cap or scope (within the request). The budget
    changes under the row's lock, in the transaction of its audit event, so a reservation racing
    with it sees the old budget or the new one, never a mix (ledger.reserve is compare-and-set)."""
    if not operator.manages:
        raise Forbidden("Only operators amend agreements.")
    if not reason.strip():
        raise InvalidParameter("Give a reason for the amendment; the developer and the auditors will read it.",
                               parameter="reason")
    change = {"epsilon": epsilon, "epsilon_add": epsilon_add, "delta": delta, "delta_add": delta_add,
              "per_query_epsilon": per_query_epsilon, "valid_to": valid_to, "datasets": datasets}
    with writing(db) as conn:
        row = _row(conn, agreement_id, lock=True)
        if row.status not in AMENDABLE:
            raise Conflict(f"Agreement {agreement_id} is {row.status}; only an active, exhausted or expired "
                           "agreement can be amended. " + {"requested": "Decide the request first (approve it)."}
                           .get(row.status, "The developer requests a new agreement."))
        stamp = now()
        values, changes = _amendment(row, **change, known=known, stamp=stamp)
        changed = conn.execute(
            update(agreements)
            .where(agreements.c.id == agreement_id, agreements.c.spent_epsilon <= values["budget_epsilon"],
                   agreements.c.spent_delta <= values["budget_delta"])
            .values(**values, decided_by=operator.id, decision_reason=reason, decided_at=stamp, updated_at=stamp)
        ).rowcount
        if changed != 1:  # the row is locked: only a bug (or a store without row locks) gets here
            raise Conflict(f"Agreement {agreement_id} changed while it was being amended; try again.")
        audit.append(conn, action="agreement.amended", actor=operator.id, role=operator.role,
                     agreement_id=agreement_id, details={
                         "reason": reason, "changes": changes,
                         "budget": {"epsilon": values["budget_epsilon"], "delta": values["budget_delta"]}})
        return _full(conn, agreement_id)


def _amendment(row: Any, *, epsilon: float | None, epsilon_add: float | None, delta: float | None,
               delta_add: float | None, per_query_epsilon: float | None, valid_to: str | None,
               datasets: Scope | None, known: dict[str, set[str]] | None,
               stamp: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The agreement's new values and what changed ({field: [before, after]}), checked."""
    budget_epsilon = _total(row.budget_epsilon, epsilon, epsilon_add, EPSILON_UNIT, "epsilon")
    budget_delta = _total(row.budget_delta, delta, delta_add, DELTA_UNIT, "delta")
    _check_budget(budget_epsilon / EPSILON_UNIT, budget_delta / DELTA_UNIT)
    if budget_epsilon < row.spent_epsilon or budget_delta < row.spent_delta:
        raise InvalidParameter(
            f"Agreement {row.id} has spent epsilon {row.spent_epsilon / EPSILON_UNIT:g} (delta "
            f"{row.spent_delta / DELTA_UNIT:g}); its budget cannot be less. Grant at least that, or revoke it.",
            parameter="epsilon")
    cap = row.per_query_epsilon if per_query_epsilon is None else per_query_epsilon
    if cap is not None and not 0 < cap <= budget_epsilon / EPSILON_UNIT:
        raise InvalidParameter(f"The per-query cap (epsilon {cap:g}) must be in (0, the budget's epsilon "
                               f"{budget_epsilon / EPSILON_UNIT:g}]; give per_query_epsilon too.",
                               parameter="per_query_epsilon")
    end = _new_end(row, valid_to, stamp)
    scope = json.loads(row.datasets) if datasets is None else _within_request(
        datasets, _requested_scope(row), known, beyond=f"An amendment stays within the request; {NEW_REQUEST}.")
    status = "exhausted" if row.spent_epsilon >= budget_epsilon else "active"
    values = {"budget_epsilon": budget_epsilon, "budget_delta": budget_delta, "per_query_epsilon": cap,
              "valid_to": end, "datasets": json.dumps(scope, sort_keys=True), "status": status}
    before = {"budget_epsilon": row.budget_epsilon, "budget_delta": row.budget_delta, "per_query_epsilon":
              row.per_query_epsilon, "valid_to": row.valid_to, "datasets": row.datasets, "status": row.status}
    changes = {name: [_shown(name, before[name]), _shown(name, value)] for name, value in values.items()}
    changes = {name: pair for name, pair in changes.items() if pair[0] != pair[1]}
    if not set(changes) - {"status"}:
        raise InvalidParameter("Nothing to amend: give a new budget or a top-up, a new end date, a per-query cap "
                               "or a scope that differs from the agreement's.", parameter="epsilon")
    return values, changes


def _total(current: int, total: float | None, add: float | None, unit: int, name: str) -> int:
    """The new budget in store units: `total`, or `current` plus `add`, or `current`."""
    if total is not None and add is not None:
        raise InvalidParameter(f"Give either {name} (the new total) or {name}_add (a top-up), not both.",
                               parameter=name)
    if add is not None:
        if not (math.isfinite(add) and add > 0):
            raise InvalidParameter(f"{name}_add must be a positive number: the {name} added to the budget.",
                                   parameter=f"{name}_add")
        return current + math.floor(add * unit + 1e-6)
    if total is not None:
        if not math.isfinite(total):
            raise InvalidParameter(f"{name} must be a finite number.", parameter=name)
        return math.floor(total * unit + 1e-6)
    return current


def _new_end(row: Any, valid_to: str | None, stamp: str) -> str:
    """The agreement's end after the amendment: later (extended), earlier (still in the
    future: to end it now, revoke it) or as it was, which an agreement that has ended may not keep."""
    if valid_to is None:
        if row.status == "expired" or row.valid_to <= stamp:
            raise InvalidParameter(f"Agreement {row.id} ended on {row.valid_to}; give a later end date (valid_to) "
                                   "to extend it.", parameter="valid_to")
        return row.valid_to
    if valid_to <= stamp or valid_to <= row.valid_from:
        raise InvalidParameter(f"The new end ({valid_to}) must lie in the future and after the start "
                               f"({row.valid_from}); to end the agreement now, revoke it.", parameter="valid_to")
    return valid_to


def _shown(name: str, value: Any) -> Any:
    """A changed value as the audit event records it: budgets as numbers, the scope as a mapping."""
    if value is None:
        return None
    if name == "budget_epsilon":
        return value / EPSILON_UNIT
    if name == "budget_delta":
        return value / DELTA_UNIT
    if name == "datasets":
        return {dataset: None if columns is None else sorted(columns) for dataset, columns in json.loads(value).items()}
    return value


def get(db: Database, user: User, agreement_id: str) -> dict[str, Any]:
    """The agreement, with its parts (each private dataset's steward decision)."""
    with reading(db) as conn:
        row = _row(conn, agreement_id)
        hidden = (user.role == "developer" and row.developer_id != user.id) or (
            user.role == "steward" and conn.execute(select(agreements.c.id).where(
                agreements.c.id == agreement_id, stewards.visible(user))).first() is None)
        if hidden:
            raise NotFound(f"No agreement {agreement_id}.", agreement_id=agreement_id)  # never confirm others' ids
        return _full(conn, agreement_id)


LIFE = ("agreement.requested", "agreement.approved", "agreement.rejected", "agreement.amended", "agreement.revoked",
        "agreement.expired", "agreement.exhausted", "agreement.reactivated", "agreement.activated",
        "dataset.approved", "dataset.rejected", "dataset.suspended", "dataset.resumed")


def decisions(db: Database, user: User, agreement_id: str) -> list[dict[str, Any]]:
    """The agreement's life as its audit events tell it, oldest first: the request, each decision
    and amendment (who, when, why, what changed), expiry and exhaustion. Job events are not here."""
    get(db, user, agreement_id)  # exists, and is the caller's to see
    with reading(db) as conn:
        rows = conn.execute(select(events.c.seq, events.c.ts, events.c.actor, events.c.role, events.c.action,
                                   events.c.dataset, events.c.details)
                            .where(events.c.agreement_id == agreement_id, events.c.action.in_(LIFE))
                            .order_by(events.c.seq)).all()
    return [dict(row._mapping) | {"details": json.loads(row.details)} for row in rows]


def list_for(db: Database, user: User, status: str | None = None) -> list[dict[str, Any]]:
    query = select(agreements).order_by(agreements.c.created_at)
    if user.role == "developer":
        query = query.where(agreements.c.developer_id == user.id)
    if user.role == "steward":
        query = query.where(stewards.visible(user))
    if status:
        query = query.where(agreements.c.status == status)
    with reading(db) as conn:
        return [public(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class Search:
    """Which agreements a history shows: every given filter must hold. Text filters match
    anywhere, ignoring case; `text` matches any of organisation, developer, datasets and purpose
    (and `text_datasets`, the datasets whose catalog titles match it: the caller knows the catalog)."""

    text: str | None = None
    organisation: str | None = None
    developer: str | None = None  # the developer's name, or their account id
    dataset: str | None = None  # exactly this dataset in scope
    purpose: str | None = None
    status: Sequence[str] = ()  # any of these (default: any)
    decided_since: str | None = None  # ISO-8601, inclusive
    decided_until: str | None = None  # ISO-8601, exclusive
    decided: bool = False  # only agreements an operator has decided (not requests waiting)
    text_datasets: Sequence[str] = ()

    def clause(self):
        conditions = [
            agreements.c.status.in_(list(self.status)) if self.status else None,
            agreements.c.status.in_(DECIDED) if self.decided else None,
            agreements.c.decided_at >= self.decided_since if self.decided_since else None,
            agreements.c.decided_at < self.decided_until if self.decided_until else None,
            licences.c.organisation.icontains(self.organisation, autoescape=True) if self.organisation else None,
            or_(users.c.name.icontains(self.developer, autoescape=True), agreements.c.developer_id == self.developer)
            if self.developer else None,
            agreements.c.datasets.contains(json.dumps(self.dataset) + ":", autoescape=True) if self.dataset else None,
            agreements.c.purpose.icontains(self.purpose, autoescape=True) if self.purpose else None,
            self._text() if self.text else None,
        ]
        return and_(True, *[c for c in conditions if c is not None])

    def _text(self):
        text = self.text or ""
        return or_(licences.c.organisation.icontains(text, autoescape=True),
                   users.c.name.icontains(text, autoescape=True),
                   agreements.c.purpose.icontains(text, autoescape=True),
                   agreements.c.datasets.icontains(text, autoescape=True),
                   *[agreements.c.datasets.contains(json.dumps(name) + ":", autoescape=True)
                     for name in self.text_datasets])


def search(db: Database, user: User, where: Search, *, limit: int = 50, offset: int = 0,
           order: str = "decided") -> tuple[list[dict[str, Any]], int]:
    """One page of the agreements `user` may see that match, and how many match. `order`:
    "decided", the last decision first (a request waiting counts from its request); "created",
    the oldest request first. Each carries its developer's name and organisation."""
    joined = agreements.outerjoin(users, users.c.id == agreements.c.developer_id).outerjoin(
        licences, licences.c.user_id == agreements.c.developer_id)
    clause = where.clause()
    if user.role == "developer":
        clause = and_(clause, agreements.c.developer_id == user.id)
    if user.role == "steward":
        clause = and_(clause, stewards.visible(user))
    when = func.coalesce(agreements.c.decided_at, agreements.c.created_at)
    sort = (when.desc(), agreements.c.id) if order == "decided" else (agreements.c.created_at, agreements.c.id)
    with reading(db) as conn:
        total = conn.execute(select(func.count()).select_from(joined).where(clause)).scalar_one()
        rows = conn.execute(select(agreements, users.c.name.label("developer_name"), licences.c.organisation)
                            .select_from(joined).where(clause).order_by(*sort).limit(limit).offset(offset))
        return [public(row) for row in rows], total


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
            "awaiting": "wait for the data stewards of its datasets to approve it",
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
    stewards.check(conn, agreement_id, touched)  # every owner's approval in force, now
    return row
