"""Operator pages: the queue of requests, one agreement with its decision and amendment forms,
the history of decided agreements (auditors read it too), licences.

Each form calls the one service function the API route calls for the same action
(`sandbox.agreements`, `sandbox.accounts`), which owns its transaction and audit event; a refused
decision shows the same message on the page, with the form as it was filled in.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from sandbox import accounts, agreements, stewards
from sandbox.accounts import User
from sandbox.api.deps import Services, ServicesDep
from sandbox.api.schemas import iso_moment
from sandbox.errors import InvalidParameter, SandboxError
from sandbox.store import now
from sandbox.web.render import ConsoleRoute, page, redirect
from sandbox.web.session import Form, Manager, Overseer

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

LICENCE_FIELDS = ("name", "organisation", "licence_number", "valid_from", "valid_to")
DONE = ("approved", "rejected", "revoked", "amended")
PAGE_SIZE = 50
HISTORY_FILTERS = ("q", "status", "dataset", "decided_from", "decided_to")


def _number(fields: dict[str, str], name: str, label: str, kind: type = float, optional: bool = False) -> Any:
    text = fields.get(name, "").strip()
    if not text:
        if optional:
            return None
        raise InvalidParameter(f"Enter the {label}.", parameter=name)
    try:
        return kind(text)
    except ValueError:
        raise InvalidParameter(f"The {label} must be {'a whole' if kind is int else 'a'} number, not {text!r}.",
                               parameter=name) from None


@router.get("/queue")
def queue(request: Request, svc: ServicesDep, user: Manager) -> Response:
    pending = agreements.list_for(svc.store, user, "requested")
    awaiting = [a | {"waiting": [p for p in stewards.parts(svc.store, a["id"]) if p["status"] == "pending"]}
                for a in agreements.list_for(svc.store, user, "awaiting")]
    active = agreements.list_for(svc.store, user, "active")
    names = accounts.people(svc.store)
    licences = {lic["user_id"]: lic for lic in accounts.list_licences(svc.store)}
    return page(request, "queue.html", user, pending=pending, awaiting=awaiting, active=active, people=names,
                licences=licences)


def _agreement_page(request: Request, svc: Services, user: User, agreement_id: str, *, status: int = 200,
                    error: SandboxError | None = None, form: dict[str, str] | None = None,
                    done: str | None = None) -> Response:
    agreement = agreements.get(svc.store, user, agreement_id)
    developer_id = agreement["developer_id"]
    names = accounts.people(svc.store)
    licence = accounts.licence_of(svc.store, developer_id)
    history = [a for a in agreements.list_for(svc.store, user)
               if a["developer_id"] == developer_id and a["id"] != agreement_id]
    policies = {}
    for name in agreement["requested_datasets"] | agreement["datasets"]:
        try:
            policies[name] = svc.catalog.get(name).describe()
        except SandboxError:
            policies[name] = None  # unregistered since the request: shown as such
    amendable = agreement["status"] in agreements.AMENDABLE
    ended = agreement["status"] == "expired" or agreement["valid_to"] <= now()
    cap = agreement["per_query_epsilon"]
    defaults = {"epsilon": f"{agreement['requested_epsilon']:g}", "delta": f"{agreement['requested_delta']:g}",
                "per_query_epsilon": "", "valid_to": agreement["valid_to"], "min_count": "0", "round_to": "1",
                "reason": ""}
    if amendable:
        defaults |= {"per_query_epsilon": "" if cap is None else f"{cap:g}", "epsilon_add": "", "delta_add": "",
                     "valid_to": "" if ended else agreement["valid_to"][:10]}
    choices = _scope_choices(agreement, policies)
    posted_scope = form is not None and any(name.startswith("col:") for name in form)
    checked = ({name for name in form if name.startswith("col:")} if form is not None and posted_scope
               else {f"col:{name}:{column}" for name, columns in _current(agreement, choices).items()
                     for column in columns})
    return page(request, "agreement.html", user, status=status, agreement=agreement, people=names, licence=licence,
                history=history, policies=policies, form=defaults | (form or {}), error=error, done=done,
                amendable=amendable, ended=ended, choices=choices, checked=checked,
                decisions=agreements.decisions(svc.store, user, agreement_id),
                section="/console/queue" if agreement["status"] == "requested" else "/console/agreements")


def _scope_choices(agreement: dict[str, Any], policies: dict[str, Any]) -> dict[str, list[str]]:
    """What an amendment may put in scope: each requested dataset with the columns requested
    (all its queryable columns, when all were requested)."""
    choices = {}
    for name, columns in agreement["requested_datasets"].items():
        policy = policies.get(name)
        choices[name] = sorted(columns) if columns is not None else sorted(policy["columns"]) if policy else []
    return choices


def _current(agreement: dict[str, Any], choices: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: choices.get(name, []) if columns is None else sorted(columns)
            for name, columns in agreement["datasets"].items()}


@router.get("/agreements/{agreement_id}")
def agreement(request: Request, agreement_id: str, svc: ServicesDep, user: Overseer,
              done: str | None = None) -> Response:
    """An agreement: operators decide, amend or revoke it here; auditors read it."""
    return _agreement_page(request, svc, user, agreement_id, done=done if done in DONE else None)


@router.post("/agreements/{agreement_id}/approve")
def approve(request: Request, agreement_id: str, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    try:
        decision = {
            "epsilon": _number(fields, "epsilon", "total epsilon"),
            "delta": _number(fields, "delta", "total delta"),
            "per_query_epsilon": _number(fields, "per_query_epsilon", "per-query epsilon cap", optional=True),
            "valid_to": fields.get("valid_to", "").strip() or None,
            "min_count": _number(fields, "min_count", "minimum count", int),
            "round_to": _number(fields, "round_to", "rounding step", int),
            "reason": fields.get("reason", "").strip(),
        }
        agreements.approve(svc.store, user, agreement_id, **decision)
    except SandboxError as exc:
        return _agreement_page(request, svc, user, agreement_id, status=exc.status, error=exc, form=fields)
    return redirect(f"/console/agreements/{agreement_id}?done=approved")


@router.post("/agreements/{agreement_id}/amend")
def amend(request: Request, agreement_id: str, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    try:
        current = agreements.get(svc.store, user, agreement_id)
        change = _amendment(fields, current, svc)
        agreements.amend(svc.store, user, agreement_id, **change, known=svc.catalog.scopes())
    except SandboxError as exc:
        return _agreement_page(request, svc, user, agreement_id, status=exc.status, error=exc, form=fields)
    return redirect(f"/console/agreements/{agreement_id}?done=amended")


def _amendment(fields: dict[str, str], current: dict[str, Any], svc: Services) -> dict[str, Any]:
    """The amend form as the service's arguments; a field left as it was is no change."""
    cap = _number(fields, "per_query_epsilon", "per-query ε cap", optional=True)
    end = fields.get("valid_to", "").strip()
    try:
        end = iso_moment(end) if end else ""
    except ValueError as exc:
        raise InvalidParameter(str(exc), parameter="valid_to") from None
    policies = {name: svc.catalog.get(name).describe() if name in svc.catalog.names() else None
                for name in current["requested_datasets"]}
    choices = _scope_choices(current, policies)
    scope = {name: [c for c in columns if fields.get(f"col:{name}:{c}")] for name, columns in choices.items()}
    scope = {name: columns for name, columns in scope.items() if columns}
    wanted: dict[str, list[str] | None] = {
        name: None if current["requested_datasets"][name] is None and columns == choices[name] else columns
        for name, columns in scope.items()}
    return {
        "epsilon_add": _number(fields, "epsilon_add", "ε to add", optional=True),
        "delta_add": _number(fields, "delta_add", "δ to add", optional=True),
        "per_query_epsilon": None if cap == current["per_query_epsilon"] else cap,
        "valid_to": None if not end or end == current["valid_to"][:len(end)] else end,
        "datasets": None if scope == _current(current, choices) else wanted,
        "reason": fields.get("reason", "").strip(),
    }


@router.get("/agreements")
def history(request: Request, svc: ServicesDep, user: Overseer) -> Response:
    """Decided agreements, newest decision first: a search over organisation, developer, dataset
    and purpose, filters on status and the decision's date (days, both inclusive), 50 a page."""
    filters = {name: request.query_params.get(name, "").strip() for name in HISTORY_FILTERS}
    filters = {name: value for name, value in filters.items() if value}
    offset, found, total, error = _offset(request), [], 0, None
    try:
        where = agreements.Search(
            text=filters.get("q"), dataset=filters.get("dataset"), decided=True,
            status=(filters["status"],) if filters.get("status") in agreements.DECIDED else (),
            decided_since=_day(filters.get("decided_from"), "decided_from"),
            decided_until=_day(filters.get("decided_to"), "decided_to", after=True),
            text_datasets=tuple(svc.catalog.titled(filters.get("q"))))
        found, total = agreements.search(svc.store, user, where, limit=PAGE_SIZE, offset=offset)
    except InvalidParameter as exc:
        error = exc
    return page(request, "history.html", user, status=error.status if error else 200, agreements=found, total=total,
                offset=offset, size=PAGE_SIZE, filters=filters, statuses=agreements.DECIDED,
                datasets=svc.catalog.names(), people=accounts.people(svc.store), error=error)


def _day(text: str | None, name: str, after: bool = False) -> str | None:
    """A day from the filter form (YYYY-MM-DD); `after`: the next day, for an inclusive end."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidParameter(f"{text!r} is not a date; write it as YYYY-MM-DD.", parameter=name) from None
    return (day + timedelta(days=1) if after else day).isoformat()


def _offset(request: Request) -> int:
    try:
        return max(int(request.query_params.get("offset", "0")), 0)
    except ValueError:
        return 0


def _decide(request: Request, svc: Services, user: User, agreement_id: str, fields: dict[str, str],
            to: str) -> Response:
    decide = {"rejected": agreements.reject, "revoked": agreements.revoke}[to]
    try:
        decide(svc.store, user, agreement_id, fields.get("reason", "").strip())
    except SandboxError as exc:
        return _agreement_page(request, svc, user, agreement_id, status=exc.status, error=exc, form=fields)
    return redirect(f"/console/agreements/{agreement_id}?done={to}")


@router.post("/agreements/{agreement_id}/reject")
def reject(request: Request, agreement_id: str, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    return _decide(request, svc, user, agreement_id, fields, "rejected")


@router.post("/agreements/{agreement_id}/revoke")
def revoke(request: Request, agreement_id: str, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    return _decide(request, svc, user, agreement_id, fields, "revoked")


def _licences_page(request: Request, svc: Services, user: User, *, status: int = 200, **context: Any) -> Response:
    licences = accounts.list_licences(svc.store)
    names = accounts.people(svc.store)
    context = {"created": None, "error": None, "form": {}, "done": None} | context
    return page(request, "licences.html", user, status=status, licences=licences, people=names, **context)


@router.get("/licences")
def licences(request: Request, svc: ServicesDep, user: Manager, done: str | None = None) -> Response:
    return _licences_page(request, svc, user, done=done if done in ("suspended", "reinstated") else None)


@router.post("/licences")
def create_licence(request: Request, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    """The new developer's token is on this response only; it is stored hashed and never shown again."""
    values = {name: fields.get(name, "").strip() for name in LICENCE_FIELDS}
    try:
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise InvalidParameter(f"Fill in {', '.join(m.replace('_', ' ') for m in missing)}.", parameter=missing[0])
        licence, developer, token = accounts.create_licence(svc.store, user, **values)
    except SandboxError as exc:
        return _licences_page(request, svc, user, status=exc.status, error=exc, form=values)
    created = {"licence": licence, "name": developer.name, "token": token}
    return _licences_page(request, svc, user, status=201, created=created)


@router.post("/licences/{licence_id}/suspend")
def suspend_licence(request: Request, licence_id: str, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    try:
        accounts.suspend_licence(svc.store, user, licence_id, fields.get("reason", "").strip())
    except SandboxError as exc:
        return _licences_page(request, svc, user, status=exc.status, error=exc)
    return redirect("/console/licences?done=suspended")


@router.post("/licences/{licence_id}/reinstate")
def reinstate_licence(request: Request, licence_id: str, fields: Form, svc: ServicesDep, user: Manager) -> Response:
    try:
        accounts.reinstate_licence(svc.store, user, licence_id, fields.get("reason", "").strip())
    except SandboxError as exc:
        return _licences_page(request, svc, user, status=exc.status, error=exc)
    return redirect("/console/licences?done=reinstated")
