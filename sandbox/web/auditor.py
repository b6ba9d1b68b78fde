"""Auditor pages: the log with filters and pages, one event in full, chain verification,
exports and charts. Reading only; the one write is the export's own audit event, written by
`audit.export`, the function the API's export calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from sandbox import accounts, audit, jobs, ledger
from sandbox.api.deps import ServicesDep
from sandbox.errors import InvalidParameter, NotFound
from sandbox.web import charts
from sandbox.web.render import HEADERS, ConsoleRoute, page
from sandbox.web.session import Auditor

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

PAGE_SIZE = 50
OUTCOMES = ("ok", "rejected", "failed", "cancelled")
FILTERS = ("actor", "agreement_id", "dataset", "action", "outcome", "job_id", "since", "until")
EXPORTS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "jsonl": "application/x-ndjson"}
# What a job's events tell, in the order an auditor reads them (job.submitted, then job.released).
STORY = ("sql", "compiled_sql", "epsilon", "delta", "reserved_epsilon", "charge_epsilon", "charge_delta",
         "accuracy", "result_hash", "reused_from", "seconds", "code", "reason", "charge_kept")


def _filters(request: Request) -> dict[str, str]:
    """The filter fields as given (blank ones dropped); times accept '2026-11-22 14:00'."""
    params = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    for name in ("since", "until"):
        params[name] = params[name].replace(" ", "T")
    return {k: v for k, v in params.items() if v}


def _offset(request: Request) -> int:
    try:
        return max(int(request.query_params.get("offset", "0")), 0)
    except ValueError:
        return 0


def summary(event: dict[str, Any]) -> str:
    """One line about an event for the log table."""
    details = event["details"]
    for key in ("reason", "sql"):
        if details.get(key):
            return str(details[key])
    if "epsilon" in details:
        return f"ε {details['epsilon']:g}" if isinstance(details["epsilon"], int | float) else ""
    if "result_hash" in details:
        return "result " + str(details["result_hash"])[:12]
    plain = [f"{k}: {v}" for k, v in details.items() if isinstance(v, str | int | float) and not k.endswith("_id")]
    return ", ".join(plain)[:100]


@router.get("/audit")
def log(request: Request, svc: ServicesDep, user: Auditor) -> Response:
    filters = _filters(request)
    offset = _offset(request)
    verification = audit.verify(svc.store, svc.trust()) if request.query_params.get("verify") else None
    events, total = audit.search(svc.store, audit.AuditFilter(**filters), limit=PAGE_SIZE, offset=offset)
    return page(request, "audit.html", user, events=events, total=total, offset=offset, size=PAGE_SIZE,
                filters=filters, people=accounts.people(svc.store), actions=audit.actions(svc.store), outcomes=OUTCOMES,
                datasets=svc.catalog.names(), verification=verification, summary=summary, exports=EXPORTS)


@router.get("/audit/events/{seq}")
def event(request: Request, seq: int, svc: ServicesDep, user: Auditor) -> Response:
    found = audit.event(svc.store, seq)
    if found is None:
        raise NotFound(f"No audit event {seq}; the log's events are numbered from 1.")
    related: list[dict[str, Any]] = []
    if found["job_id"]:
        related, _ = audit.search(svc.store, audit.AuditFilter(job_id=found["job_id"]), limit=50, newest_first=False)
    names = accounts.people(svc.store)
    story: dict[str, Any] = {}
    for other in related or [found]:
        story |= {k: other["details"][k] for k in STORY if k in other["details"]}
    return page(request, "event.html", user, event=found, related=related, story=story, people=names)


@router.get("/audit/export")
def export(request: Request, svc: ServicesDep, user: Auditor, format: str = "csv") -> Response:
    """The same export as GET /audit/export, recorded in the log the same way."""
    if format not in EXPORTS:
        raise InvalidParameter(f"Unknown export format {format!r}; use csv, parquet or jsonl.", parameter="format")
    body = audit.export(svc.store, format, audit.AuditFilter(**_filters(request)), by=user)
    return Response(body, media_type=EXPORTS[format], headers=HEADERS | {
        "Content-Disposition": f'attachment; filename="audit.{format}"'})


@router.get("/audit/charts")
def charts_page(request: Request, svc: ServicesDep, user: Auditor) -> Response:
    names = accounts.people(svc.store)
    spending = []
    for about, points in ledger.spending(svc.store):
        about["developer"] = names.get(about["developer_id"], {}).get("name", "?")
        label = f"{about['id'][:8]} · {about['developer']} · {about['purpose'][:48]}"
        spending.append((about, charts.Series(label, points)))
    rejections = jobs.rejections(svc.store)
    return page(request, "charts.html", user, spending=spending, rejections=rejections,
                spending_chart=charts.steps([s for _, s in spending], unit="ε spent (cumulative)",
                                            title="Privacy budget spent per agreement over time",
                                            until=datetime.now(UTC).replace(tzinfo=None)),
                rejections_chart=charts.bars(rejections, title="Rejected queries by reason"))
