"""One in-process app for the API tests: its own SQLite store over the session's demo catalog,
its lifespan run (so the job service and one engine worker are up), and the people who use it.

The app is session-scoped because starting the engine's worker costs about a second. Tests
that change someone's state (suspend a licence, spend a budget) make their own developer and
agreement with `api.developer()` / `api.agreement(...)`, so tests stay independent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fastapi import FastAPI

from sandbox import accounts, agreements
from sandbox.accounts import User
from sandbox.api import create_app
from sandbox.settings import Settings
from sandbox.store import Store

ROLES = ("developer", "operator", "auditor", "admin", "steward")
STEWARDED = "enterprises"  # the standing steward's organisation owns this dataset (and no other test's)
WRONG_TOKEN = "sbx_this-token-was-never-issued"
COUNT_BY_DISTRICT = "SELECT district, COUNT(*) FROM residents GROUP BY district"


class _PortalTransport(httpx.BaseTransport):
    """Synchronous httpx on top of `httpx.ASGITransport`, driven through an anyio portal (one
    event loop in a background thread, as uvicorn would run it)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: FastAPI) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self._asgi.handle_async_request(request)
            return response.status_code, response.headers.raw, await response.aread()

        status, headers, content = self._portal.call(send)
        return httpx.Response(status, headers=headers, content=content, request=request)


@contextmanager
def asgi_client(app: FastAPI) -> Iterator[httpx.Client]:
    """An httpx client calling `app` in-process with its lifespan run: `ASGITransport` alone
    does not run it, and without it the job service never starts."""
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
            with httpx.Client(transport=_PortalTransport(portal, app), base_url="http://sandbox") as client:
                yield client


def app_routes(app: FastAPI, *, documented: bool | None = None) -> set[tuple[str, str]]:
    """(METHOD, path) of every route the app serves, HEAD aside; `documented=True` keeps only
    the routes in the OpenAPI document, False only the others. Newer FastAPI keeps included
    routers nested in `app.routes`; its `iter_route_contexts` flattens them."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        routes: Any = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    return {(method, route.path) for route in routes for method in (route.methods or ()) if method != "HEAD"
            if documented is None or bool(getattr(route, "include_in_schema", False)) == documented}


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass
class Api:
    """The app, a client for it, its store, and the standing cast with their tokens."""

    app: FastAPI
    client: httpx.Client
    store: Store
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str | None) -> dict[str, str]:
        """`who` is a key of `tokens` (a role, or a name given to `developer(...)`), None for no
        token, or "wrong" for a token the server never issued."""
        if who is None:
            return {}
        return bearer(WRONG_TOKEN if who == "wrong" else self.tokens[who])

    def request(self, who: str | None, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, headers=self.headers(who) | kwargs.pop("headers", {}), **kwargs)

    def get(self, who: str | None, url: str, **kwargs: Any) -> httpx.Response:
        return self.request(who, "GET", url, **kwargs)

    def post(self, who: str | None, url: str, **kwargs: Any) -> httpx.Response:
        return self.request(who, "POST", url, **kwargs)

    # -- state, made directly in the store (fast, and not what these tests are about) ----------
    def developer(self, name: str | None = None) -> str:
        """A newly licensed developer; returns the key of its token in `tokens`."""
        name = name or f"dev-{uuid.uuid4().hex[:8]}"
        with self.store.transaction() as conn:
            _, user, token = accounts.create_licence(
                conn, self.users["operator"], name=name, organisation="Xiamen University",
                licence_number=f"XM-{uuid.uuid4().hex[:12]}", valid_from="2020-01-01", valid_to="2100-01-01")
        self.users[name], self.tokens[name] = user, token
        return name

    def agreement(
        self, developer: str = "developer", *, status: str = "active", epsilon: float = 5.0,
        per_query_epsilon: float | None = None, datasets: dict[str, list[str] | None] | None = None,
        valid_to: str = "2100-01-01", stewarded: bool = False,
    ) -> str:
        """An agreement for `developer`, left `requested` or approved (`active`) as asked;
        `stewarded`: with a part per private dataset for its owner's steward (as POST /agreements)."""
        scope = datasets or {"residents": None}
        catalog = self.app.state.services.catalog
        known = {name: set(catalog.get(name).policy.queryable()) for name in scope}
        with self.store.transaction() as conn:
            row = agreements.request(
                conn, self.users[developer], purpose="API tests", legal_basis="Test data only",
                datasets=scope, valid_from="2020-01-01", valid_to=valid_to,
                epsilon=epsilon, delta=1e-6, known=known, owners=catalog.owners() if stewarded else None)
            if status == "active":
                agreements.approve(conn, self.users["operator"], row["id"], per_query_epsilon=per_query_epsilon)
        return row["id"]

    def job(self, developer: str, agreement_id: str, sql: str = COUNT_BY_DISTRICT, epsilon: float = 0.1,
            **extra: Any) -> dict[str, Any]:
        """Submit and wait; returns the job (asserting it was accepted)."""
        response = self.post(developer, "/jobs", json={"sql": sql, "epsilon": epsilon, "agreement_id": agreement_id,
                                                       "wait": 30} | extra)
        assert response.status_code == 201, response.text
        return response.json()

    def spent(self, who: str, agreement_id: str) -> float:
        return self.get(who, f"/agreements/{agreement_id}").json()["spent_epsilon"]

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Matching audit events, oldest first."""
        page = self.get("auditor", "/audit", params={"limit": 1000} | filters).json()
        return list(reversed(page["events"]))


@pytest.fixture(scope="session")
def api(demo_catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    database = tmp_path_factory.mktemp("api-store") / "sandbox.db"
    settings = Settings(data_dir=demo_catalog.data_dir, DATABASE_URL=f"sqlite:///{database}", workers=1)
    app = create_app(settings)
    with asgi_client(app) as client:
        api = Api(app, client, app.state.services.store)
        with api.store.transaction() as conn:
            admin, api.tokens["admin"] = accounts.create_user(conn, "Test admin", "admin")
            api.users["admin"] = admin
            for role in ("operator", "auditor"):
                api.users[role], api.tokens[role] = accounts.create_user(conn, f"Test {role}", role, by=admin)
            api.users["steward"], api.tokens["steward"] = accounts.create_user(
                conn, "Test steward", "steward", by=admin, organisation=app.state.services.catalog.get(
                    STEWARDED).policy.owner)
        api.developer("developer")
        yield api
