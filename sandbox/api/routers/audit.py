"""The audit log for auditors: filter, verify, the signed checkpoints, export (itself audited)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from sandbox import audit
from sandbox.api.deps import Auditor, ServicesDep
from sandbox.api.schemas import (
    AuditEvent,
    AuditPage,
    CheckpointExport,
    ErrorBody,
    Limit,
    Moment,
    Offset,
    Verification,
)
from sandbox.audit import checkpoints

router = APIRouter(prefix="/audit", tags=["audit"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                                                               422: {"model": ErrorBody}})

_MEDIA = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
_ID = "6f1c3c1e-5d0b-4b8e-9a51-6a1e7c1f2d3a"


def _filter(
    actor: Annotated[str | None, Query(description="a user's id", examples=[_ID])] = None,
    agreement_id: Annotated[str | None, Query(examples=[_ID])] = None,
    dataset: Annotated[str | None, Query(examples=["residents"])] = None,
    action: Annotated[str | None, Query(examples=["job.released"])] = None,
    outcome: Annotated[str | None, Query(examples=["rejected"])] = None,
    job_id: Annotated[str | None, Query(examples=[_ID])] = None,
    since: Annotated[Moment | None, Query(description="ISO-8601, inclusive (UTC if no zone)",
                                          examples=["2026-11-01T00:00:00Z"])] = None,
    until: Annotated[Moment | None, Query(description="ISO-8601, exclusive (UTC if no zone)",
                                          examples=["2026-12-01"])] = None,
) -> audit.AuditFilter:
    return audit.AuditFilter(actor, agreement_id, dataset, action, outcome, job_id, since, until)


Filter = Annotated[audit.AuditFilter, Depends(_filter)]


@router.get("", summary="Events, newest first, with filters and pagination")
def list_events(svc: ServicesDep, _: Auditor, where: Filter, limit: Limit = 100, offset: Offset = 0) -> AuditPage:
    events, total = audit.search(svc.store, where, limit=limit, offset=offset)
    return AuditPage(events=[AuditEvent(**e) for e in events], total=total, limit=limit, offset=offset)


@router.get("/verify", summary="Recompute the hash chain and check the signed checkpoints; names the first bad event")
def verify(svc: ServicesDep, _: Auditor) -> Verification:
    return Verification(**audit.verify(svc.store, svc.trust()).__dict__)


@router.get("/checkpoints", summary="The signed checkpoints of the audit head and the public key to check them")
def list_checkpoints(svc: ServicesDep, _: Auditor) -> CheckpointExport:
    return CheckpointExport(**checkpoints.export(svc.store, svc.signer))


@router.get("/export", summary="Export (filtered) events as CSV, Parquet or JSONL", response_class=Response,
            responses={200: {"description": "the events, oldest first; `details` is canonical JSON", "content": {
                media: {"schema": {"type": "string", "format": "binary"}} for media in _MEDIA.values()}}})
def export(
    svc: ServicesDep, auditor: Auditor, where: Filter,
    format: Annotated[Literal["csv", "jsonl", "parquet"], Query(examples=["csv"])] = "jsonl",
) -> Response:
    body = audit.export(svc.store, format, where, by=auditor)
    return Response(body, media_type=_MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="audit.{format}"'})
