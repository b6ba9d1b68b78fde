"""Data steward pages: their queue of parts to decide, their datasets (suspend every use), the
agreements that use them (suspend or resume one), and one part with its decision forms.

Each form calls the service function the API route calls for the same action
(`sandbox.stewards`), which owns its transaction and audit event; a refused decision shows the
same message on the page, with the form as it was filled in.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from sandbox import accounts, agreements, stewards
from sandbox.accounts import User
from sandbox.api.deps import Services, ServicesDep
from sandbox.api.schemas import iso_moment
from sandbox.errors import InvalidParameter, NotFound, SandboxError
from sandbox.web.render import ConsoleRoute, page, redirect
from sandbox.web.session import Form, Steward

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

DONE = ("approved", "rejected", "suspended", "resumed")


def _mine(svc: Services, user: User) -> list[dict[str, Any]]:
    """The steward's datasets: the catalog's datasets whose policy names their organisation as owner."""
    return [d.describe() for d in svc.catalog.list() if d.policy.owner == user.organisation]


@router.get("/stewardship")
def home(request: Request, svc: ServicesDep, user: Steward, done: str | None = None) -> Response:
    return _home(request, svc, user, done=done)


def _home(request: Request, svc: Services, user: User, *, done: str | None = None,
          error: SandboxError | None = None, status: int = 200) -> Response:
    parts = stewards.queue(svc.store, user)
    return page(request, "stewardship.html", user, status=status,
                pending=[p for p in parts if p["status"] == "pending"],
                decided=[p for p in parts if p["status"] != "pending"], datasets=_mine(svc, user),
                done=done if done in DONE else None, error=error)


def _part_page(request: Request, svc: Services, user: User, agreement_id: str, dataset: str, *, status: int = 200,
               error: SandboxError | None = None, form: dict[str, str] | None = None,
               done: str | None = None) -> Response:
    agreement = agreements.get(svc.store, user, agreement_id)  # NotFound unless it uses the steward's data
    part = next((p for p in agreement["parts"] if p["dataset"] == dataset and p["owner"] == user.organisation), None)
    if part is None:
        raise NotFound(f"Agreement {agreement_id} has no part for a dataset {dataset!r} of {user.organisation}.")
    requested = agreement["requested_datasets"].get(dataset)
    columns = sorted(requested) if requested is not None else sorted(svc.catalog.scopes().get(dataset, ()))
    licence = accounts.licence_of(svc.store, agreement["developer_id"])
    defaults = {"epsilon": "", "valid_to": "", "min_count": "", "round_to": "", "reason": ""}
    checked = ({name[4:] for name in form if name.startswith("col:")} if form is not None
               else set(part["columns"] or columns))
    return page(request, "part.html", user, status=status, agreement=agreement, part=part, columns=columns,
                checked=checked, licence=licence, switch="resume" if part["suspended"] else "suspend",
                form=defaults | (form or {}), error=error,
                done=done if done in DONE else None,
                decisions=agreements.decisions(svc.store, user, agreement_id), section="/console/stewardship")


@router.get("/stewardship/{agreement_id}/{dataset}")
def part(request: Request, agreement_id: str, dataset: str, svc: ServicesDep, user: Steward,
         done: str | None = None) -> Response:
    return _part_page(request, svc, user, agreement_id, dataset, done=done)


@router.post("/stewardship/{agreement_id}/{dataset}/approve")
def approve(request: Request, agreement_id: str, dataset: str, fields: Form, svc: ServicesDep,
            user: Steward) -> Response:
    try:
        epsilon_text = fields.get("epsilon", "").strip()
        try:
            epsilon = float(epsilon_text) if epsilon_text else None
        except ValueError:
            raise InvalidParameter(f"The ε for {dataset} must be a number, not {epsilon_text!r}.",
                                   parameter="epsilon") from None
        end = fields.get("valid_to", "").strip()
        try:
            end = iso_moment(end) if end else ""
        except ValueError as exc:
            raise InvalidParameter(str(exc), parameter="valid_to") from None
        rules = {name: _whole(fields, name) for name in ("min_count", "round_to")}
        chosen = sorted(name[4:] for name in fields if name.startswith("col:"))
        current = agreements.get(svc.store, user, agreement_id)
        requested = current["requested_datasets"].get(dataset)
        everything = sorted(requested) if requested is not None else sorted(svc.catalog.scopes().get(dataset, ()))
        stewards.approve(svc.store, user, agreement_id, dataset, epsilon=epsilon, valid_to=end or None,
                         columns=None if chosen == everything else chosen, reason=fields.get("reason", "").strip(),
                         known=svc.catalog.scopes(), **rules)
    except SandboxError as exc:
        return _part_page(request, svc, user, agreement_id, dataset, status=exc.status, error=exc, form=fields)
    return redirect(f"/console/stewardship/{agreement_id}/{dataset}?done=approved")


def _whole(fields: Any, name: str) -> int | None:
    """A form's whole number, or None when left blank."""
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidParameter(f"{name} must be a whole number, not {text!r}; leave it blank to keep the "
                               "agreement's and the dataset's rule.", parameter=name) from None


@router.post("/stewardship/{agreement_id}/{dataset}/reject")
def reject(request: Request, agreement_id: str, dataset: str, fields: Form, svc: ServicesDep,
           user: Steward) -> Response:
    try:
        stewards.reject(svc.store, user, agreement_id, dataset, fields.get("reason", "").strip())
    except SandboxError as exc:
        return _part_page(request, svc, user, agreement_id, dataset, status=exc.status, error=exc, form=fields)
    return redirect(f"/console/stewardship/{agreement_id}/{dataset}?done=rejected")


@router.post("/stewardship/datasets/{dataset}/{action}")
def switch(request: Request, dataset: str, action: str, fields: Form, svc: ServicesDep, user: Steward) -> Response:
    """Suspend or resume the use of a dataset: under one agreement (the form's `agreement_id`, from
    its part's page) or every agreement (from the stewardship page)."""
    if action not in ("suspend", "resume"):
        raise NotFound(f"There is no {action} for a dataset; suspend or resume it.")
    agreement_id = fields.get("agreement_id") or None
    change = stewards.suspend if action == "suspend" else stewards.resume
    try:
        change(svc.store, user, dataset, fields.get("reason", "").strip(), agreement_id=agreement_id)
    except SandboxError as exc:
        if agreement_id:
            return _part_page(request, svc, user, agreement_id, dataset, status=exc.status, error=exc)
        return _home(request, svc, user, error=exc, status=exc.status)
    done = "suspended" if action == "suspend" else "resumed"
    if agreement_id:
        return redirect(f"/console/stewardship/{agreement_id}/{dataset}?done={done}")
    return redirect(f"/console/stewardship?done={done}")
