"""Data-use agreements: developers request, operators decide, everyone sees what they may."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from sandbox import agreements
from sandbox.api.deps import Developer, Manager, Reader, ServicesDep
from sandbox.api.schemas import AgreementApprove, AgreementId, AgreementPublic, AgreementRequest, ErrorBody, Reason

router = APIRouter(prefix="/agreements", tags=["agreements"],
                   responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody},
                              422: {"model": ErrorBody}})

Status = Literal["requested", "active", "rejected", "revoked", "expired", "exhausted"]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Request an agreement (developer)")
def request_agreement(body: AgreementRequest, svc: ServicesDep, developer: Developer) -> AgreementPublic:
    known = {d.name: set(d.policy.queryable()) for d in svc.catalog.list() if not d.policy.public}
    with svc.store.transaction() as conn:
        return AgreementPublic(**agreements.request(conn, developer, known=known, **body.model_dump()))


@router.get("", summary="Agreements: a developer's own; all for operators and auditors")
def list_agreements(
    svc: ServicesDep, user: Reader,
    status_: Annotated[Status | None, Query(alias="status", description="only this status",
                                            examples=["requested"])] = None,
) -> list[AgreementPublic]:
    with svc.store.read() as conn:
        return [AgreementPublic(**a) for a in agreements.list_for(conn, user, status_)]


@router.get("/{agreement_id}", summary="One agreement with its budget")
def get_agreement(agreement_id: AgreementId, svc: ServicesDep, user: Reader) -> AgreementPublic:
    with svc.store.read() as conn:
        return AgreementPublic(**agreements.get(conn, user, agreement_id))


@router.post("/{agreement_id}/approve", summary="Approve, possibly with less budget or scope (operator)",
             responses={409: {"model": ErrorBody}})
def approve(agreement_id: AgreementId, body: AgreementApprove, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    with svc.store.transaction() as conn:
        return AgreementPublic(**agreements.approve(conn, operator, agreement_id, **body.model_dump()))


@router.post("/{agreement_id}/reject", summary="Reject with a reason (operator)", responses={409: {"model": ErrorBody}})
def reject(agreement_id: AgreementId, body: Reason, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    with svc.store.transaction() as conn:
        return AgreementPublic(**agreements.reject(conn, operator, agreement_id, body.reason))


@router.post("/{agreement_id}/revoke", summary="Revoke an active agreement (operator)",
             responses={409: {"model": ErrorBody}})
def revoke(agreement_id: AgreementId, body: Reason, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    with svc.store.transaction() as conn:
        return AgreementPublic(**agreements.revoke(conn, operator, agreement_id, body.reason))
