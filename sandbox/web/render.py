"""Pages: one Jinja2 environment, the console's filters, and errors shown as pages, not JSON.

Every page is server-rendered HTML with no script and no request to anywhere but this server;
the Content-Security-Policy below says so to the browser as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from sandbox.accounts import User
from sandbox.errors import InternalError, SandboxError, Unauthorized
from sandbox.web import i18n as web_i18n
from sandbox.web.session import CSRF_FIELD, SESSION_COOKIE, csrf_token

__all__ = ["ConsoleRoute", "HEADERS", "page"]

HERE = Path(__file__).parent

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# (label, path) per role; the first entry is the role's home page.
NAV: dict[str, list[tuple[str, str]]] = {
    "operator": [("Requests", "/console/queue"), ("Agreements", "/console/agreements"),
                 ("Licences", "/console/licences"), ("Catalog", "/console/catalog")],
    "auditor": [("Audit log", "/console/audit"), ("Agreements", "/console/agreements"),
                ("Charts", "/console/audit/charts"), ("Catalog", "/console/catalog")],
    "developer": [("My agreements", "/console/me"), ("Catalog", "/console/catalog")],
    "steward": [("Stewardship", "/console/stewardship"), ("Catalog", "/console/catalog")],
}
NAV["admin"] = NAV["operator"]


def home(user: User) -> str:
    return NAV[user.role][0][1]


def _epsilon(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _delta(value: float | None) -> str:
    return "—" if value is None else ("0" if value == 0 else f"{value:.1e}")


def _when(stamp: str | None) -> str:
    """'2026-11-22T14:05:33.123456Z' -> '2026-11-22 14:05:33' (all times are UTC)."""
    return "—" if not stamp else stamp.replace("T", " ")[:19]


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _query(params: dict[str, Any], **changes: Any) -> str:
    """A query string from the current filters with some changed; empty values are dropped."""
    merged = {k: v for k, v in (params | changes).items() if v not in (None, "", 0) or k == "format"}
    return "?" + urlencode(merged) if merged else ""


env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(epsilon=_epsilon, delta=_delta, when=_when, pretty=_pretty, query=_query,
                   short=lambda text: (text or "—")[:8], number=lambda n: f"{n:,}")
env.globals.update(CSRF_FIELD=CSRF_FIELD)
web_i18n.install(env)


def page(request: Request, template: str, user: User | None, *, status: int = 200, seed: str | None = None,
         section: str | None = None, **context: Any) -> HTMLResponse:
    """Render `template` for `user`; `seed` is the session the forms' CSRF token derives from
    (default: this request's cookie); `section`, the menu entry the page belongs to (default: by
    its path)."""
    nav = NAV.get(user.role, []) if user else []
    path = section or request.url.path
    here = [href for _, href in nav if path.startswith(href)]
    html = env.get_template(template).render(
        request=request, user=user, nav=nav, current=max(here, key=len, default=None),
        csrf=csrf_token(request, seed), **web_i18n.context(request) | context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


class ConsoleRoute(APIRoute):
    """Console routes answer with pages: no session -> the sign-in page; any other refusal -> an
    error page that says what to do (the same message the API would send); a bug of ours -> a
    500 page with the id it was logged under."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized as exc:
                if request.method == "GET" and request.cookies.get(SESSION_COOKIE) is None:
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return redirect("/console/signin?next=" + quote(target, safe=""))
                return page(request, "error.html", None, status=exc.status, error=exc)
            except SandboxError as exc:
                return page(request, "error.html", None, status=exc.status, error=exc)
            except Exception as exc:
                error = InternalError.logged(exc)
                return page(request, "error.html", None, status=error.status, error=error)

        return route
