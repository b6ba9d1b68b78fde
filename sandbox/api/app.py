"""FastAPI app factory. For now: health and the catalog (schemas and policies, never rows);
accounts, agreements, jobs and audit arrive with the service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox import __version__
from sandbox.catalog import Catalog
from sandbox.errors import SandboxError
from sandbox.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalog = Catalog(settings.data_dir)
    app = FastAPI(title="Xiamen public-data sandbox", version=__version__)
    app.state.settings = settings
    app.state.catalog = catalog

    @app.exception_handler(SandboxError)
    async def sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": exc.to_dict()})

    @app.get("/health", tags=["service"], summary="Liveness and catalog size")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "datasets": len(catalog.names())}

    @app.get("/datasets", tags=["catalog"], summary="Registered datasets: schema and policy, never rows")
    def datasets() -> list[dict[str, Any]]:
        return [dataset.describe() for dataset in catalog.list()]

    @app.get("/datasets/{name}", tags=["catalog"], summary="One dataset's schema and policy")
    def dataset(name: str) -> dict[str, Any]:
        return catalog.get(name).describe()

    return app
