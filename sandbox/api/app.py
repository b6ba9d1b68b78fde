"""FastAPI app factory: one router per resource, one JSON shape for every error."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import web
from sandbox._version import __version__
from sandbox.api import abuse
from sandbox.api.deps import Services
from sandbox.api.routers import accounts, agreements, audit, catalog, jobs, register, stewardship
from sandbox.api.schemas import Health
from sandbox.errors import InternalError, SandboxError, TooManyRequests
from sandbox.settings import Settings

log = logging.getLogger("sandbox.api")

DESCRIPTION = """Licensed developers run SQL over data they never see; only differentially
private aggregates leave. Operators decide data-use agreements and budgets; auditors read and
verify the hash-chained log. Authenticate with `Authorization: Bearer <token>`.
Every error has the shape `{"error": {"code": ..., "message": ...}}`; the message says what to do."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        closed = services.jobs.start()
        if closed:
            log.warning("settled %d job(s) whose server process stopped (lease expired)", closed)
        services.checkpointer.start()
        yield
        services.close()

    app = FastAPI(title="Xiamen public-data sandbox", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    app.state.settings = settings
    abuse.install(app, settings)
    for exception, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(exception, handler)

    app.add_api_route("/", lambda: RedirectResponse("/console"), include_in_schema=False)  # people land on the console
    app.add_api_route("/register", lambda: RedirectResponse("/console/register"), include_in_schema=False)

    @app.get("/health", tags=["service"], summary="Liveness and catalog size")
    def health() -> Health:
        return Health(status="ok", version=__version__, datasets=len(services.catalog.names()))

    for router in (catalog.router, accounts.router, agreements.router, stewardship.router, jobs.router, audit.router,
                   register.router):
        app.include_router(router)
    app.include_router(web.router)
    return app


# -- one JSON shape for every error ---------------------------------------------------------------


async def sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
    # RFC 9110: a 401 names the scheme the client should use.
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, TooManyRequests):  # RFC 9110: when to come back
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(status_code=exc.status, content={"error": exc.to_dict()}, headers=headers)


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [{"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "problem": e["msg"]}
                for e in exc.errors()]
    first = problems[0] if problems else {"field": "body", "problem": "invalid"}
    message = f"{first['field']}: {first['problem']}. Fix the request; see /docs for the expected shape."
    return JSONResponse(status_code=422, content={"error": {"code": "invalid_request", "message": message,
                                                            "problems": problems}})


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Errors raised by the framework itself (unknown route, wrong method, a body that is not
    UTF-8 JSON) take the same shape as ours; the console keeps its own pages."""
    if request.url.path.startswith("/console"):
        return await http_exception_handler(request, exc)
    if exc.status_code == 400:  # FastAPI could not parse the body at all
        problem = {"field": "body", "problem": "the body is not valid UTF-8 JSON"}
        message = "body: the body is not valid UTF-8 JSON. Send a JSON object; see /docs for the expected shape."
        return JSONResponse(status_code=422, content={"error": {
            "code": "invalid_request", "message": message, "problems": [problem]}})
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    message = {404: f"There is no {request.url.path}. See /docs for the API's paths.",
               405: f"{request.method} is not allowed on {request.url.path}. See /docs for the methods."}.get(
        exc.status_code, str(exc.detail))
    return JSONResponse(status_code=exc.status_code, content={"error": {"code": code, "message": message}},
                        headers=getattr(exc, "headers", None))


async def unexpected(_: Request, exc: Exception) -> JSONResponse:
    """A bug of ours: 500 `internal` with the id its traceback was logged under, never a refusal."""
    return JSONResponse(status_code=500, content={"error": InternalError.logged(exc).to_dict()})


ERROR_HANDLERS = {SandboxError: sandbox_error, RequestValidationError: invalid_request,
                  StarletteHTTPException: http_error, Exception: unexpected}
