"""The audit log for auditors: filter, verify, export (the export itself is audited)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from sandbox import audit
from sandbox.api.deps import Auditor, ServicesDep
from sandbox.api.schemas import AuditEvent, AuditPage, ErrorBody, Verification

router = APIRouter(prefix="/audit", tags=["audit"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})

_MEDIA = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def _filter(actor, agreement_id, dataset, action, outcome, job_id, since, until) -> audit.AuditFilter:
    return audit.AuditFilter(actor, agreement_id, dataset, action, outcome, job_id, since, until)


@router.get("", summary="Events, newest first, with filters and pagination")
def list_events(
    svc: ServicesDep, _: Auditor, actor: str | None = None, agreement_id: str | None = None,
    dataset: str | None = None, action: str | None = None, outcome: str | None = None, job_id: str | None = None,
    since: str | None = Query(None, description="ISO-8601 UTC, inclusive", examples=["2026-11-01T00:00:00Z"]),
    until: str | None = Query(None, description="ISO-8601 UTC, exclusive"),
    limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
) -> AuditPage:
    where = _filter(actor, agreement_id, dataset, action, outcome, job_id, since, until)
    with svc.store.read() as conn:
        events, total = audit.search(conn, where, limit=limit, offset=offset)
    return AuditPage(events=[AuditEvent(**e) for e in events], total=total, limit=limit, offset=offset)


@router.get("/verify", summary="Recompute the hash chain; names the first bad event")
def verify(svc: ServicesDep, _: Auditor) -> Verification:
    with svc.store.read() as conn:
        return Verification(**audit.verify(conn).__dict__)


@router.get("/export", summary="Export (filtered) events as CSV, Parquet or JSONL", response_class=Response,
            responses={200: {"content": {m: {} for m in _MEDIA.values()}}})
def export(
    svc: ServicesDep, auditor: Auditor, format: Literal["csv", "jsonl", "parquet"] = "jsonl",
    actor: str | None = None, agreement_id: str | None = None, dataset: str | None = None,
    action: str | None = None, outcome: str | None = None, job_id: str | None = None,
    since: str | None = None, until: str | None = None,
) -> Response:
    where = _filter(actor, agreement_id, dataset, action, outcome, job_id, since, until)
    with svc.store.transaction() as conn:
        body = audit.export(conn, format, where)
        audit.append(conn, action="audit.exported", actor=auditor.id, role=auditor.role,
                     details={"format": format, "filter": {k: v for k, v in where.__dict__.items() if v}})
    return Response(body, media_type=_MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="audit.{format}"'})
