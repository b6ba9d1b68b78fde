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
    return AgreementPublic(**agreements.request(svc.store, developer, known=known, **body.model_dump()))


@router.get("", summary="Agreements: a developer's own; all for operators and auditors")
def list_agreements(
    svc: ServicesDep, user: Reader,
    status_: Annotated[Status | None, Query(alias="status", description="only this status",
                                            examples=["requested"])] = None,
) -> list[AgreementPublic]:
    return [AgreementPublic(**a) for a in agreements.list_for(svc.store, user, status_)]


@router.get("/{agreement_id}", summary="One agreement with its budget")
def get_agreement(agreement_id: AgreementId, svc: ServicesDep, user: Reader) -> AgreementPublic:
    return AgreementPublic(**agreements.get(svc.store, user, agreement_id))


@router.post("/{agreement_id}/approve", summary="Approve, possibly with less budget or scope (operator)",
             responses={409: {"model": ErrorBody}})
def approve(agreement_id: AgreementId, body: AgreementApprove, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    return AgreementPublic(**agreements.approve(svc.store, operator, agreement_id, **body.model_dump()))


@router.post("/{agreement_id}/reject", summary="Reject with a reason (operator)", responses={409: {"model": ErrorBody}})
def reject(agreement_id: AgreementId, body: Reason, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    return AgreementPublic(**agreements.reject(svc.store, operator, agreement_id, body.reason))


@router.post("/{agreement_id}/revoke", summary="Revoke an active agreement (operator)",
             responses={409: {"model": ErrorBody}})
def revoke(agreement_id: AgreementId, body: Reason, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    return AgreementPublic(**agreements.revoke(svc.store, operator, agreement_id, body.reason))
