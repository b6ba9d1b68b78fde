"""The developer's read-only page: their agreements with budget gauges, and their jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sandbox import agreements
from sandbox.api.deps import ServicesDep
from sandbox.web.render import ConsoleRoute, page
from sandbox.web.session import Developer

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

JOBS_SHOWN = 50


@router.get("/me")
def mine(request: Request, svc: ServicesDep, user: Developer) -> Response:
    own = agreements.list_for(svc.store, user)
    jobs = svc.jobs.list(user, limit=JOBS_SHOWN)
    own.sort(key=lambda a: a["created_at"], reverse=True)
    own.sort(key=lambda a: a["status"] != "active")  # active first, then newest first
    return page(request, "developer.html", user, agreements=own, jobs=jobs, shown=JOBS_SHOWN)
