"""Operator pages: the queue of requests, one request with its decision forms, licences.

Each form calls the one service function the API route calls for the same action
(`sandbox.agreements`, `sandbox.accounts`), which owns its transaction and audit event; a refused
decision shows the same message on the page, with the form as it was filled in.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from sandbox import accounts, agreements
from sandbox.accounts import User
from sandbox.api.deps import Services, ServicesDep
from sandbox.errors import InvalidParameter, SandboxError
from sandbox.web.render import ConsoleRoute, page, redirect
from sandbox.web.session import Form, Manager

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

LICENCE_FIELDS = ("name", "organisation", "licence_number", "valid_from", "valid_to")


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
    active = agreements.list_for(svc.store, user, "active")
    names = accounts.people(svc.store)
    licences = {lic["user_id"]: lic for lic in accounts.list_licences(svc.store)}
    return page(request, "queue.html", user, pending=pending, active=active, people=names, licences=licences)


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
    for name in agreement["datasets"]:
        try:
            policies[name] = svc.catalog.get(name).describe()
        except SandboxError:
            policies[name] = None  # unregistered since the request: shown as such
    defaults = {"epsilon": f"{agreement['requested_epsilon']:g}", "delta": f"{agreement['requested_delta']:g}",
                "per_query_epsilon": "", "valid_to": agreement["valid_to"], "min_count": "0", "round_to": "1",
                "reason": ""}
    return page(request, "agreement.html", user, status=status, agreement=agreement, people=names, licence=licence,
                history=history, policies=policies, form=defaults | (form or {}), error=error, done=done)


@router.get("/agreements/{agreement_id}")
def agreement(request: Request, agreement_id: str, svc: ServicesDep, user: Manager,
              done: str | None = None) -> Response:
    done = done if done in ("approved", "rejected", "revoked") else None
    return _agreement_page(request, svc, user, agreement_id, done=done)


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
    return _licences_page(request, svc, user, done=done if done == "suspended" else None)


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
