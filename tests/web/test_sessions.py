"""Sign-in, the session cookie, CSRF on every form, and the pages' security headers."""

from __future__ import annotations

import pytest

from tests.web.conftest import csrf_of


def test_sign_in_sets_a_strict_http_only_cookie_and_lands_on_the_role_home(console) -> None:
    client = console.client()
    form = client.get("/console/signin")
    assert form.status_code == 200 and 'for="token"' in form.text
    token = console.people.tokens["auditor"]
    response = client.post("/console/signin", data={"csrf": csrf_of(form.text), "token": token})
    assert response.status_code == 303 and response.headers["location"] == "/console/audit"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("sandbox_session="))
    assert {"HttpOnly", "Path=/console", "SameSite=strict"} <= {part.strip() for part in cookie.split(";")}
    assert client.get("/console").headers["location"] == "/console/audit"


def test_a_wrong_token_is_refused_on_the_form(console) -> None:
    client = console.client()
    form = client.get("/console/signin")
    response = client.post("/console/signin", data={"csrf": csrf_of(form.text), "token": "sbx_not-a-token"})
    assert response.status_code == 401
    assert "Unknown or disabled token" in response.text
    assert "sandbox_session" not in response.headers.get("set-cookie", "")


def test_without_a_session_pages_send_you_to_sign_in_and_back(console) -> None:
    client = console.client()
    response = client.get("/console/audit?action=job.released")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/signin?next=%2Fconsole%2Faudit%3Faction%3Djob.released"
    form = client.get(response.headers["location"])
    signed = client.post("/console/signin", data={"csrf": csrf_of(form.text), "token": console.people.tokens["auditor"],
                                                  "next": "/console/audit?action=job.released"})
    assert signed.headers["location"] == "/console/audit?action=job.released"


@pytest.mark.parametrize("target", ["//evil.example/console", "https://evil.example/", "/console\\@evil", "/elsewhere"])
def test_sign_in_never_redirects_off_the_console(console, target) -> None:
    client = console.client()
    form = client.get("/console/signin")
    signed = client.post("/console/signin", data={"csrf": csrf_of(form.text), "next": target,
                                                  "token": console.people.tokens["operator"]})
    assert signed.headers["location"] == "/console/queue"


def test_sign_in_needs_the_pre_session_token(console) -> None:
    """Login CSRF: another site cannot sign this browser in to an account of its choosing."""
    client = console.client()
    response = client.post("/console/signin", data={"token": console.people.tokens["operator"]})
    assert response.status_code == 403 and "sandbox_session" not in response.headers.get("set-cookie", "")


def test_sign_out_ends_the_session(console) -> None:
    client = console.client("operator")
    page = client.get("/console/queue")
    response = client.post("/console/signout", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/console/signin"
    assert client.get("/console/queue").status_code == 303  # back to the sign-in page


def test_a_cookie_copied_before_sign_out_is_worthless_after_it(console) -> None:
    """The cookie is a server-side session, not the API token: a copy (a shared computer, a proxy
    log) stops working when its user signs out, and never opens the API."""
    client = console.client("operator")
    cookie = client.cookies["sandbox_session"]
    token = console.people.tokens["operator"]
    assert token not in cookie and cookie not in token, "the cookie must not carry the API token"
    thief = console.client()
    thief.cookies.set("sandbox_session", cookie, path="/console")
    assert thief.get("/console/queue").status_code == 200, "a live session opens its pages"
    assert thief.get("/agreements", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    client.post("/console/signout", data={"csrf": csrf_of(client.get("/console/queue").text)})
    stolen = thief.get("/console/queue")
    assert stolen.status_code == 401 and "session has ended" in stolen.text


def test_a_session_expires(fresh_console) -> None:
    from sqlalchemy import update

    from sandbox.store.schema import console_sessions

    client = fresh_console.client("auditor")
    assert client.get("/console/audit").status_code == 200
    with fresh_console.store.transaction() as conn:
        conn.execute(update(console_sessions).values(expires_at="2000-01-01T00:00:00.000000Z"))
    assert client.get("/console/audit").status_code == 401


def test_sign_in_and_out_are_audited(fresh_console) -> None:
    from sandbox import audit

    client = fresh_console.client("operator")
    client.post("/console/signout", data={"csrf": csrf_of(client.get("/console/queue").text)})
    events, _ = audit.search(fresh_console.store, audit.AuditFilter(actor=fresh_console.people.users["operator"].id))
    assert [e["action"] for e in events][:2] == ["session.closed", "session.opened"]


def _reject(client, agreement_id: str, **fields):
    return client.post(f"/console/agreements/{agreement_id}/reject", data={"reason": "out of scope"} | fields)


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(fresh_console) -> None:
    operator = fresh_console.client("operator")
    pending = fresh_console.people.pending_id
    for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
        response = _reject(operator, pending, **fields)
        assert response.status_code == 403 and "security token" in response.text
    page = operator.get(f"/console/agreements/{pending}")
    assert '<span class="status requested">requested</span>' in page.text


def test_a_csrf_token_of_another_session_is_refused(fresh_console) -> None:
    """The token is bound to the session: every sign-in, even of the same account, gets its own."""
    first, second = fresh_console.client("operator"), fresh_console.client("operator")
    token_of_first = csrf_of(first.get("/console/queue").text)
    assert token_of_first != csrf_of(second.get("/console/queue").text)
    refused = _reject(second, fresh_console.people.pending_id, csrf=token_of_first)
    assert refused.status_code == 403 and "security token" in refused.text


def test_a_form_with_its_csrf_token_goes_through(fresh_console) -> None:
    operator = fresh_console.client("operator")
    pending = fresh_console.people.pending_id
    page = operator.get(f"/console/agreements/{pending}")
    response = _reject(operator, pending, csrf=csrf_of(page.text))
    assert response.status_code == 303 and response.headers["location"].endswith("?done=rejected")


def test_a_form_must_be_urlencoded(fresh_console) -> None:
    operator = fresh_console.client("operator")
    token = csrf_of(operator.get("/console/queue").text)
    response = operator.post(f"/console/agreements/{fresh_console.people.pending_id}/reject",
                             json={"csrf": token, "reason": "json is not a form"})
    assert response.status_code == 422


def test_pages_say_no_scripts_no_framing_no_caching(console) -> None:
    response = console.client("auditor").get("/console/audit")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store" and response.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in response.text and "http://" not in response.text.replace('xmlns="http://www.w3.org', "")


def test_the_style_sheet_is_served_from_the_console(console) -> None:
    response = console.client().get("/console/static/console.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert ":focus-visible" in response.text


def _console_posts(app) -> list[str]:
    """Every POST route of the console, from the app itself: a new form cannot be forgotten here."""
    from tests.api.conftest import app_routes

    return sorted(path for method, path in app_routes(app) if method == "POST" and path.startswith("/console"))


def test_every_console_post_is_refused_without_its_csrf_token(fresh_console) -> None:
    from sandbox import accounts, audit

    posts = _console_posts(fresh_console.app)
    assert len(posts) >= 7 and "/console/signin" in posts and "/console/signout" in posts, posts
    licence = accounts.list_licences(fresh_console.store)[0]["id"]
    ids = {"agreement_id": fresh_console.people.pending_id, "licence_id": licence, "dataset": "residents",
           "action": "suspend"}
    operator = fresh_console.client("operator")
    before = audit.search(fresh_console.store, audit.AuditFilter(), limit=1)[1]
    for path in posts:
        url = path.format(**ids)
        for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
            form = fields | {"reason": "forged", "token": fresh_console.people.tokens["operator"], "epsilon": "1",
                             "delta": "0", "min_count": "0", "round_to": "1", "name": "Mallory",
                             "organisation": "Elsewhere", "licence_number": f"X-{len(fields)}",
                             "valid_from": "2026-01-01", "valid_to": "2027-01-01"}
            refused = operator.post(url, data=form)
            assert refused.status_code == 403, (url, fields, refused.status_code)
            assert "security token" in refused.text or "sign-in form is stale" in refused.text, url
    assert audit.search(fresh_console.store, audit.AuditFilter(), limit=1)[1] == before, "nothing changed"
    assert operator.get("/console/queue").status_code == 200, "still signed in: sign-out was refused too"
