"""Who is using the console, and proof that a form came from the console itself.

    sign-in form --token--> accounts.authenticate --> accounts.open_session --> cookie
                 `sandbox_session` = a random session id (HttpOnly, SameSite=Strict, Path=/console);
                 the database keeps only its SHA-256, the user and an expiry
    every page   --cookie--> accounts.session_user --> the API's own role check for that page
    every POST   --form field `csrf` == HMAC(console key, session id)--> or refused (403)
    sign-out     --> accounts.close_session: the session ends in the database, not only in the browser

The cookie never holds the API token: a leaked cookie opens one session until it expires
(`console_session_hours`) or its user signs out. The console key is DATA_DIR/console.key
(created once, owner-only). Before sign-in, a random `sandbox_presession` cookie stands in for
the session, so the sign-in form carries a token too. Role checks are the API's dependencies
themselves (`sandbox.api.deps`), called on the session's user, so a page admits exactly the
roles its API route admits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request, Response

from sandbox import accounts
from sandbox.accounts import User
from sandbox.api import deps
from sandbox.api.deps import ServicesDep
from sandbox.errors import Forbidden, InvalidParameter
from sandbox.private_files import create_once

__all__ = ["Auditor", "ConsoleUser", "Developer", "Form", "Manager", "Member", "Overseer", "Reader", "Steward",
           "csrf_token", "sign_in",
           "sign_out"]

SESSION_COOKIE = "sandbox_session"
PRESESSION_COOKIE = "sandbox_presession"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024


class CSRFRefused(Forbidden):
    code = "csrf_refused"


@lru_cache(maxsize=8)
def console_key(data_dir: Path) -> bytes:
    """32 random bytes, made once per data directory and readable by its owner only."""
    return create_once(data_dir / "console.key", lambda: secrets.token_bytes(32))


def _csrf_for(request: Request, seed: str) -> str:
    key = console_key(Path(request.app.state.settings.data_dir).resolve())
    return hmac.new(key, b"csrf\0" + seed.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request, seed: str | None = None) -> str:
    """The token every form of this browser session must send back ('' without a session)."""
    seed = seed or request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRESESSION_COOKIE)
    return _csrf_for(request, seed) if seed else ""


def presession(request: Request) -> str:
    """The sign-in page's stand-in session: the browser's, or a new one (see `keep_presession`)."""
    return request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)


def keep_presession(request: Request, response: Response, seed: str) -> None:
    if request.cookies.get(PRESESSION_COOKIE) != seed:
        _set(request, response, PRESESSION_COOKIE, seed)


def _set(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path="/console", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def sign_in(request: Request, response: Response, svc: deps.Services, user: User) -> None:
    """A new server-side session for `user`; its random id is the cookie (and seeds its CSRF token)."""
    session_id = accounts.open_session(svc.store, user, hours=svc.settings.console_session_hours)
    _set(request, response, SESSION_COOKIE, session_id)
    response.delete_cookie(PRESESSION_COOKIE, path="/console")


def sign_out(request: Request, response: Response, svc: deps.Services) -> None:
    """End the session in the database (the cookie is then worthless anywhere) and in the browser."""
    accounts.close_session(svc.store, request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/console", httponly=True, samesite="strict")


def console_user(request: Request, svc: ServicesDep) -> User:
    """The account behind the session cookie; Unauthorized (-> the sign-in page) without a live one."""
    return accounts.session_user(svc.store, request.cookies.get(SESSION_COOKIE))


ConsoleUser = Annotated[User, Depends(console_user)]


def _same_roles_as(api_alias: Any) -> Any:
    """A console dependency that runs the API alias's own role check on the cookie's user."""
    check = api_alias.__metadata__[0].dependency

    def dependency(user: ConsoleUser) -> User:
        return check(user)

    return Annotated[User, Depends(dependency)]


Manager = _same_roles_as(deps.Manager)  # operator, admin
Auditor = _same_roles_as(deps.Auditor)  # auditor
Developer = _same_roles_as(deps.Developer)  # developer
Reader = _same_roles_as(deps.Reader)  # every role
Overseer = _same_roles_as(deps.Overseer)  # operator, admin, auditor
Member = _same_roles_as(deps.Member)  # every role, stewards too
Steward = _same_roles_as(deps.Steward)  # data stewards


async def checked_form(request: Request) -> dict[str, str]:
    """The posted fields, after the CSRF check. Forms are urlencoded; the last value of a repeated
    field wins."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise InvalidParameter("Submit this form from the console page.", parameter="body")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidParameter("The form is too large.", parameter="body")
    fields = {name: values[-1] for name, values in parse_qs(body.decode("utf-8", "replace"),
                                                             keep_blank_values=True).items()}
    expected = csrf_token(request)
    if not expected or not hmac.compare_digest(fields.pop(CSRF_FIELD, ""), expected):
        raise CSRFRefused("This form's security token is missing or belongs to another session. "
                          "Reload the page and submit the form again.")
    return fields


Form = Annotated[dict[str, str], Depends(checked_form)]
