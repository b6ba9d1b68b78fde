"""Each console page admits exactly the roles of the API route it mirrors.

For every page and every role, the page's answer (200 or 403) is compared with what the HTTP API
answers the same account on a route with the same role check: non-mutating requests, so the
comparison can run for every role on one app. A developer's cookie opens no operator or auditor
page, and without a cookie every page sends you to sign in.
"""

from __future__ import annotations

import pytest

ROLES = ("admin", "operator", "auditor", "developer")


def _pages(console) -> list[tuple[str, tuple[str, str, dict | None]]]:
    """(console page, the API request whose role check it shares)."""
    pp = console.people
    manager_route = ("POST", "/licences/no-such-licence/suspend", {"reason": "role probe"})  # operator, admin
    auditor_route = ("GET", "/audit?limit=1", None)  # auditor
    developer_route = ("POST", "/jobs/no-such-job/cancel", None)  # developer
    reader_route = ("GET", "/datasets", None)  # every role
    overseer_route = ("GET", "/licences", None)  # operator, admin, auditor
    return [
        ("/console/queue", manager_route),
        (f"/console/agreements/{pp.pending_id}", overseer_route),  # auditors read it, without the forms
        (f"/console/agreements/{pp.active_id}", overseer_route),
        ("/console/agreements", overseer_route),
        ("/console/agreements?q=income&status=active&decided_from=2020-01-01&decided_to=2100-01-01", overseer_route),
        ("/console/licences", manager_route),
        ("/console/audit", auditor_route),
        ("/console/audit?verify=1", auditor_route),
        ("/console/audit/events/1", auditor_route),
        ("/console/audit/charts", auditor_route),
        ("/console/audit/export?format=csv", auditor_route),
        ("/console/me", developer_route),
        ("/console/catalog", reader_route),
    ]


def _api_allows(console, role: str, request: tuple[str, str, dict | None]) -> bool:
    method, path, body = request
    response = console.client().request(method, path, json=body,
                                        headers={"Authorization": f"Bearer {console.people.tokens[role]}"})
    assert response.status_code != 401, response.text
    return response.status_code != 403


@pytest.mark.parametrize("role", ROLES)
def test_pages_admit_the_roles_their_api_routes_admit(console, role) -> None:
    client = console.client(role)
    for page, api_request in _pages(console):
        allowed = _api_allows(console, role, api_request)
        response = client.get(page)
        assert response.status_code == (200 if allowed else 403), (role, page, response.status_code)
        if not allowed:
            assert f"you are signed in as {role}" in response.text


def test_a_developer_cookie_opens_no_operator_or_auditor_page(console) -> None:
    developer = console.client("developer")
    for page, _ in _pages(console):
        if page in ("/console/me", "/console/catalog"):
            continue
        response = developer.get(page)
        assert response.status_code == 403 and "Not allowed" in response.text, page


def test_a_developer_cannot_post_operator_forms(fresh_console) -> None:
    """A valid CSRF token does not widen a role: the developer's own session token is refused by
    the role check, and the request stays pending."""
    from tests.web.conftest import csrf_of

    developer = fresh_console.client("developer")
    token = csrf_of(developer.get("/console/me").text)
    pending = fresh_console.people.pending_id
    response = developer.post(f"/console/agreements/{pending}/approve",
                              data={"csrf": token, "epsilon": "4", "delta": "1e-6", "min_count": "0", "round_to": "1"})
    assert response.status_code == 403
    operator_view = fresh_console.client("operator").get(f"/console/agreements/{pending}")
    assert '<span class="status requested">requested</span>' in operator_view.text


def test_without_a_cookie_every_page_asks_for_sign_in(console) -> None:
    anonymous = console.client()
    for page, _ in _pages(console):
        response = anonymous.get(page)
        assert response.status_code == 303 and response.headers["location"].startswith("/console/signin?next="), page


def test_a_stale_cookie_is_told_to_sign_in_again(console) -> None:
    client = console.client()
    client.cookies.set("sandbox_session", "nonce.sbx_revoked-or-made-up", path="/console")
    response = client.get("/console/queue")
    assert response.status_code == 401 and "Sign in with another token" in response.text
