"""The operator, auditor and developer console: server-rendered pages under /console.

    common     sign in and out, language, start page, catalog   every role
    operator   request queue, decisions, licences            operator, admin
    auditor    audit log, event detail, verify, export, charts   auditor
    developer  own agreements with budget gauges, own jobs   developer
    steward    queue of parts, own datasets, suspensions     steward

The pages call the same service functions as the HTTP API (`sandbox.accounts`, `agreements`,
`audit`, the job service) with the same role checks; `session` explains sign-in and CSRF.
Included by the app with `app.include_router(web.router)`.
"""

from __future__ import annotations

from fastapi import APIRouter

from sandbox.web import auditor, common, developer, operator, steward
from sandbox.web.render import ConsoleRoute

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
router.add_api_route("", common.start, methods=["GET"])  # /console itself, next to /console/
for _part in (common.router, operator.router, auditor.router, developer.router, steward.router):
    router.include_router(_part)
