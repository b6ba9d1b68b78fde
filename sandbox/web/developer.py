"""The developer's read-only pages: their agreements with budget gauges, their jobs a page at a
time, and one job with its released table."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sandbox import agreements
from sandbox.api.deps import ServicesDep
from sandbox.client import Release
from sandbox.web.i18n import locale_of
from sandbox.web.render import ConsoleRoute, page
from sandbox.web.session import Developer

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

JOBS_SHOWN = 50


@router.get("/me")
def mine(request: Request, svc: ServicesDep, user: Developer, offset: int = 0) -> Response:
    offset = max(offset, 0)
    own = agreements.list_for(svc.store, user)
    jobs = svc.jobs.list(user, limit=JOBS_SHOWN + 1, offset=offset)  # one more: is there a next page?
    own.sort(key=lambda a: a["created_at"], reverse=True)
    own.sort(key=lambda a: a["status"] != "active")  # active first, then newest first
    return page(request, "developer.html", user, agreements=own, jobs=jobs[:JOBS_SHOWN], shown=JOBS_SHOWN,
                offset=offset, more=len(jobs) > JOBS_SHOWN)


@router.get("/me/jobs/{job_id}")
def job(request: Request, job_id: str, svc: ServicesDep, user: Developer) -> Response:
    """One of the developer's jobs; a released one as its table, each value with its interval."""
    found = svc.jobs.get(user, job_id)
    release = Release.from_job(found, None, locale_of(request)) if found["status"] == "released" else None
    return page(request, "job.html", user, job=found, release=release)
