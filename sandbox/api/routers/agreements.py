"""Data-use agreements: developers request, operators decide, everyone sees what they may."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from sandbox import agreements
from sandbox.api.deps import Developer, Manager, Member, ServicesDep
from sandbox.api.schemas import (
    AgreementAmend,
    AgreementApprove,
    AgreementId,
    AgreementPublic,
    AgreementRequest,
    ErrorBody,
    Limit,
    Moment,
    Offset,
    Reason,
)

router = APIRouter(prefix="/agreements", tags=["agreements"],
                   responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody},
                              422: {"model": ErrorBody}})

Status = Literal["requested", "awaiting", "active", "rejected", "revoked", "expired", "exhausted"]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Request an agreement (developer)")
def request_agreement(body: AgreementRequest, svc: ServicesDep, developer: Developer) -> AgreementPublic:
    requested = agreements.request(svc.store, developer, known=svc.catalog.scopes(), owners=svc.catalog.owners(),
                                   **body.model_dump())
    return AgreementPublic(**requested)


@router.get("", summary="Agreements: a developer's own; a steward's, those using their datasets; all for operators "
            "and auditors; search and pages",
            description="Every filter given must hold; text filters match anywhere, ignoring case. The response "
                        "header `X-Total-Count` is the number of agreements that match (the page holds at most "
                        "`limit`). Sorted by request (oldest first), or with `order=decided` by the last decision "
                        "(newest first).")
def list_agreements(
    response: Response, svc: ServicesDep, user: Member,
    status_: Annotated[list[Status] | None, Query(alias="status", description="only these statuses",
                                                  examples=[["active", "exhausted"]])] = None,
    q: Annotated[str | None, Query(max_length=200, description="any of organisation, developer, dataset (name or "
                                   "title), purpose", examples=["income"])] = None,
    organisation: Annotated[str | None, Query(max_length=200, description="the developer's organisation (part)",
                                              examples=["Xiamen University"])] = None,
    developer: Annotated[str | None, Query(max_length=200, description="the developer's name (part) or account id",
                                           examples=["Lin"])] = None,
    dataset: Annotated[str | None, Query(max_length=100, description="this dataset in scope",
                                         examples=["residents"])] = None,
    purpose: Annotated[str | None, Query(max_length=200, description="the purpose (part)",
                                         examples=["inequality"])] = None,
    decided: Annotated[bool, Query(description="only agreements an operator has decided", examples=[True])] = False,
    decided_since: Annotated[Moment | None, Query(description="decided at or after (ISO-8601)",
                                                  examples=["2026-01-01"])] = None,
    decided_until: Annotated[Moment | None, Query(description="decided before (ISO-8601, exclusive)",
                                                  examples=["2026-07-01"])] = None,
    order: Annotated[Literal["created", "decided"], Query(description="by request, or by last decision",
                                                          examples=["decided"])] = "created",
    limit: Limit = 1000, offset: Offset = 0,
) -> list[AgreementPublic]:
    where = agreements.Search(text=q, organisation=organisation, developer=developer, dataset=dataset, purpose=purpose,
                              status=tuple(status_ or ()), decided=decided, decided_since=decided_since,
                              decided_until=decided_until, text_datasets=tuple(svc.catalog.titled(q)))
    found, total = agreements.search(svc.store, user, where, limit=limit, offset=offset, order=order)
    response.headers["X-Total-Count"] = str(total)
    return [AgreementPublic(**a) for a in found]


@router.get("/{agreement_id}", summary="One agreement with its budget")
def get_agreement(agreement_id: AgreementId, svc: ServicesDep, user: Member) -> AgreementPublic:
    return AgreementPublic(**agreements.get(svc.store, user, agreement_id))


@router.post("/{agreement_id}/approve", summary="Approve, possibly with less budget or scope (operator)",
             responses={409: {"model": ErrorBody}})
def approve(agreement_id: AgreementId, body: AgreementApprove, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    return AgreementPublic(**agreements.approve(svc.store, operator, agreement_id, **body.model_dump(),
                                                known=svc.catalog.scopes()))


@router.post("/{agreement_id}/amend", summary="Amend an agreement: top-up, later end, scope within the request "
             "(operator)", responses={409: {"model": ErrorBody}})
def amend(agreement_id: AgreementId, body: AgreementAmend, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    amended = agreements.amend(svc.store, operator, agreement_id, **body.model_dump(), known=svc.catalog.scopes())
    return AgreementPublic(**amended)


@router.post("/{agreement_id}/reject", summary="Reject with a reason (operator)", responses={409: {"model": ErrorBody}})
def reject(agreement_id: AgreementId, body: Reason, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    return AgreementPublic(**agreements.reject(svc.store, operator, agreement_id, body.reason))


@router.post("/{agreement_id}/revoke", summary="Revoke an active agreement (operator)",
             responses={409: {"model": ErrorBody}})
def revoke(agreement_id: AgreementId, body: Reason, svc: ServicesDep, operator: Manager) -> AgreementPublic:
    return AgreementPublic(**agreements.revoke(svc.store, operator, agreement_id, body.reason))
