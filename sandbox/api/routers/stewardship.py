"""Data stewards: their queue, their decisions on their datasets' parts of agreements, and
suspensions (sandbox/stewards.py owns each transaction and its audit event)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from sandbox import stewards
from sandbox.api.deps import ServicesDep, Steward
from sandbox.api.schemas import (
    AgreementId,
    DatasetName,
    DatasetPart,
    ErrorBody,
    PartApprove,
    Reason,
    StewardPart,
    Suspension,
)

router = APIRouter(tags=["stewardship"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                                                    404: {"model": ErrorBody}, 422: {"model": ErrorBody}})


@router.get("/stewardship/parts", summary="The parts of agreements that use your organisation's datasets (steward)")
def queue(svc: ServicesDep, steward: Steward,
          status: Annotated[Literal["pending", "approved", "rejected", "delegated"] | None,
                            Query(description="only parts with this status", examples=["pending"])] = None,
          ) -> list[StewardPart]:
    return [StewardPart(**part) for part in stewards.queue(svc.store, steward, status=status)]


@router.post("/agreements/{agreement_id}/datasets/{name}/approve", summary="Approve your dataset's part of a "
             "request, possibly with a smaller budget, fewer columns, an earlier end (steward)",
             responses={409: {"model": ErrorBody}})
def approve(agreement_id: AgreementId, name: DatasetName, body: PartApprove, svc: ServicesDep,
            steward: Steward) -> DatasetPart:
    return DatasetPart(**stewards.approve(svc.store, steward, agreement_id, name, **body.model_dump(),
                                          known=svc.catalog.scopes()))


@router.post("/agreements/{agreement_id}/datasets/{name}/reject", summary="Reject your dataset's part: the request "
             "is rejected (steward)", responses={409: {"model": ErrorBody}})
def reject(agreement_id: AgreementId, name: DatasetName, body: Reason, svc: ServicesDep,
           steward: Steward) -> DatasetPart:
    return DatasetPart(**stewards.reject(svc.store, steward, agreement_id, name, body.reason))


@router.post("/datasets/{name}/suspend", summary="Suspend the use of your dataset under one agreement or all, from "
             "the next job on (steward)", responses={409: {"model": ErrorBody}})
def suspend(name: DatasetName, body: Suspension, svc: ServicesDep, steward: Steward) -> list[DatasetPart]:
    return [DatasetPart(**p) for p in stewards.suspend(svc.store, steward, name, body.reason,
                                                       agreement_id=body.agreement_id)]


@router.post("/datasets/{name}/resume", summary="Lift a suspension (steward)", responses={409: {"model": ErrorBody}})
def resume(name: DatasetName, body: Suspension, svc: ServicesDep, steward: Steward) -> list[DatasetPart]:
    return [DatasetPart(**p) for p in stewards.resume(svc.store, steward, name, body.reason,
                                                      agreement_id=body.agreement_id)]
