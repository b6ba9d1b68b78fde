"""Pages every role shares: sign in and out, the start page, the catalog, the style sheet, the
language switch."""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from sandbox import accounts, i18n, register
from sandbox.api.deps import ServicesDep
from sandbox.errors import SandboxError
from sandbox.policy import Role
from sandbox.web.i18n import COOKIE as LANGUAGE_COOKIE
from sandbox.web.render import ConsoleRoute, home, page, redirect
from sandbox.web.session import (
    CSRF_FIELD,
    MAX_FORM_BYTES,
    PRESESSION_COOKIE,
    ConsoleUser,
    CSRFRefused,
    Form,
    Member,
    csrf_token,
    keep_presession,
    presession,
    sign_in,
    sign_out,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

STYLE = (Path(__file__).parent / "static" / "console.css").read_bytes()


def _safe_next(target: str | None) -> str | None:
    """Only a console path: never another site (`//host`, `/\\host`) after signing in."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return None


@router.get("/static/console.css", include_in_schema=False)
def style() -> Response:
    return Response(STYLE, media_type="text/css", headers={"Cache-Control": "public, max-age=3600",
                                                           "X-Content-Type-Options": "nosniff"})


@router.get("/language")
def choose_language(request: Request, to: str = "", next: str = "/console") -> Response:
    """The language switch (header: English · 中文): remembers the choice for this browser and
    goes back to the page."""
    response = redirect(_safe_next(next) or "/console")
    locale = i18n.normalize(to)
    if locale:
        response.set_cookie(LANGUAGE_COOKIE, locale, max_age=365 * 24 * 3600, path="/console", samesite="strict",
                            httponly=True, secure=request.url.scheme == "https")
    return response


@router.get("/")
def start(user: ConsoleUser) -> Response:
    return redirect(home(user))


@router.get("/signin")
def signin_form(request: Request, next: str | None = None) -> Response:
    seed = presession(request)
    response = page(request, "signin.html", None, seed=seed, next=_safe_next(next) or "", error=None)
    keep_presession(request, response, seed)
    return response


@router.post("/signin")
async def signin(request: Request, svc: ServicesDep) -> Response:
    """The sign-in form's token derives from the pre-session cookie, whatever session cookie an
    earlier sign-in left behind."""
    body = await request.body()
    fields = {k: v[-1] for k, v in parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace")).items()}
    seed = request.cookies.get(PRESESSION_COOKIE)
    if not seed or not hmac.compare_digest(fields.get(CSRF_FIELD, ""), csrf_token(request, seed)):
        raise CSRFRefused("This sign-in form is stale or came from another site. "
                          "Reload the sign-in page and try again.")
    try:
        user = accounts.authenticate(svc.store, fields.get("token", "").strip())
    except SandboxError as exc:
        return page(request, "signin.html", None, status=exc.status, seed=seed,
                    next=_safe_next(fields.get("next")) or "", error=exc.message)
    response = redirect(_safe_next(fields.get("next")) or home(user))
    sign_in(request, response, svc, user)
    return response


@router.post("/signout")
def signout(request: Request, _: Form, svc: ServicesDep) -> Response:
    response = redirect("/console/signin")
    sign_out(request, response, svc)
    return response


@router.get("/register")
def public_register(request: Request, svc: ServicesDep) -> Response:
    """The public register of approved agreements (sandbox/register.py): no sign-in needed."""
    return page(request, "register.html", None, entries=register.entries(svc.store))


@router.get("/catalog")
def catalog(request: Request, svc: ServicesDep, user: Member) -> Response:
    """Each dataset's policy in words: privacy unit, what each column may be used for, limits."""
    datasets = [d.describe() for d in svc.catalog.list()]
    return page(request, "catalog.html", user, datasets=datasets, roles=Role)

