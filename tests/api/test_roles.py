"""Who may call what: every route of the app x every role, no token and a wrong token.

The table below is the access policy. A route the app serves without an entry here fails
`test_every_route_has_an_entry`, so a new endpoint cannot ship without a decision on who may
call it. Each entry builds a request that would succeed for an allowed caller (fresh state where
the call changes state), so a wrong status means the role check is wrong, not the request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox import accounts, stewards
from tests.api.conftest import COUNT_BY_DISTRICT, ROLES, STEWARDED, Api, app_routes

CALLERS = (*ROLES, None, "wrong")
EVERYONE = dict.fromkeys(ROLES, 200)
MANAGERS = ("operator", "admin")


@dataclass(frozen=True)
class Own:
    """What the standing developer owns: an active agreement and a released job under it."""

    agreement_id: str
    job_id: str


@dataclass(frozen=True)
class Entry:
    """How to call a route (url and httpx keywords) and who gets which status; every other role
    gets 403, and a missing or unknown token 401, unless the route is public."""

    call: Callable[[Api, Own], tuple[str, dict[str, Any]]]
    allowed: dict[str, int]
    public: bool = False

    def expected(self, caller: str | None) -> int:
        if self.public:
            return 200
        if caller in (None, "wrong"):
            return 401
        return self.allowed.get(caller, 403)


def _fixed(url: str, **kwargs: Any) -> Callable[[Api, Own], tuple[str, dict[str, Any]]]:
    return lambda api, own: (url, kwargs)


def _licence_to_suspend(api: Api, own: Own) -> tuple[str, dict[str, Any]]:
    developer = api.developer()
    with api.store.read() as conn:
        licence = accounts.licence_of(conn, api.users[developer].id)
    return f"/licences/{licence['id']}/suspend", {"json": {"reason": "role matrix"}}


def _licence_to_reinstate(api: Api, own: Own) -> tuple[str, dict[str, Any]]:
    url, kwargs = _licence_to_suspend(api, own)
    accounts.suspend_licence(api.store, api.users["operator"], url.split("/")[2], "role matrix")
    return url.replace("/suspend", "/reinstate"), kwargs


def _licence_body() -> dict[str, Any]:
    return {"json": {"name": "Dr. Matrix", "organisation": "Xiamen University",
                     "licence_number": f"XM-{uuid.uuid4().hex[:12]}", "valid_from": "2026-01-01",
                     "valid_to": "2100-01-01"}}


def _part(action: str, body: dict[str, Any]) -> Callable[[Api, Own], tuple[str, dict[str, Any]]]:
    """A request over the steward's dataset, its part pending for them."""
    def call(api: Api, own: Own) -> tuple[str, dict[str, Any]]:
        agreement_id = api.agreement(status="requested", datasets={STEWARDED: None}, stewarded=True)
        return f"/agreements/{agreement_id}/datasets/{STEWARDED}/{action}", {"json": body}
    return call


def _suspension(action: str) -> Callable[[Api, Own], tuple[str, dict[str, Any]]]:
    def call(api: Api, own: Own) -> tuple[str, dict[str, Any]]:
        agreement_id = api.agreement(status="requested", datasets={STEWARDED: None}, stewarded=True)
        if action == "resume":
            stewards.suspend(api.store, api.users["steward"], STEWARDED, "role matrix", agreement_id=agreement_id)
        return f"/datasets/{STEWARDED}/{action}", {"json": {"reason": "role matrix", "agreement_id": agreement_id}}
    return call


_AGREEMENT_REQUEST = {"purpose": "Role matrix", "legal_basis": "Test data only", "datasets": {"residents": None},
                      "valid_from": "2026-01-01", "valid_to": "2100-01-01", "epsilon": 1.0}

ACCESS: dict[tuple[str, str], Entry] = {
    # public: liveness and the API's own documentation
    ("GET", "/health"): Entry(_fixed("/health"), EVERYONE, public=True),
    ("GET", "/openapi.json"): Entry(_fixed("/openapi.json"), EVERYONE, public=True),
    ("GET", "/docs"): Entry(_fixed("/docs"), EVERYONE, public=True),
    ("GET", "/docs/oauth2-redirect"): Entry(_fixed("/docs/oauth2-redirect"), EVERYONE, public=True),
    ("GET", "/redoc"): Entry(_fixed("/redoc"), EVERYONE, public=True),
    # public: / leads to the console (its sign-in page without a session)
    ("GET", "/"): Entry(_fixed("/", follow_redirects=True), EVERYONE, public=True),
    # public: the register of approved agreements (page and JSON)
    ("GET", "/register"): Entry(_fixed("/register", follow_redirects=True), EVERYONE, public=True),
    ("GET", "/api/register"): Entry(_fixed("/api/register"), EVERYONE, public=True),
    # everyone signed in: who am I, and the catalog (schemas, never rows)
    ("GET", "/me"): Entry(_fixed("/me"), EVERYONE),
    ("GET", "/datasets"): Entry(_fixed("/datasets"), EVERYONE),
    ("GET", "/datasets/{name}"): Entry(_fixed("/datasets/residents"), EVERYONE),
    ("GET", "/datasets/{name}/certificate"): Entry(_fixed("/datasets/residents/certificate"), EVERYONE),
    # accounts: the admin makes staff, operators license developers, auditors may look
    ("POST", "/users"): Entry(_fixed("/users", json={"name": "New auditor", "role": "auditor"}), {"admin": 201}),
    ("GET", "/users"): Entry(_fixed("/users"), {"operator": 200, "admin": 200, "auditor": 200}),
    ("GET", "/licences"): Entry(_fixed("/licences"), {"operator": 200, "admin": 200, "auditor": 200}),
    ("POST", "/licences"): Entry(lambda api, own: ("/licences", _licence_body()), dict.fromkeys(MANAGERS, 201)),
    ("POST", "/licences/{licence_id}/suspend"): Entry(_licence_to_suspend, dict.fromkeys(MANAGERS, 200)),
    ("POST", "/licences/{licence_id}/reinstate"): Entry(_licence_to_reinstate, dict.fromkeys(MANAGERS, 200)),
    # agreements: developers request, operators decide, everyone reads what they may
    ("POST", "/agreements"): Entry(_fixed("/agreements", json=_AGREEMENT_REQUEST), {"developer": 201}),
    ("GET", "/agreements"): Entry(_fixed("/agreements"), EVERYONE),
    ("GET", "/agreements/{agreement_id}"): Entry(lambda api, own: (f"/agreements/{own.agreement_id}", {}),
                                                 EVERYONE | {"steward": 404}),  # not their organisation's data
    ("POST", "/agreements/{agreement_id}/approve"): Entry(
        lambda api, own: (f"/agreements/{api.agreement(status='requested')}/approve", {"json": {"epsilon": 1.0}}),
        dict.fromkeys(MANAGERS, 200)),
    ("POST", "/agreements/{agreement_id}/reject"): Entry(
        lambda api, own: (f"/agreements/{api.agreement(status='requested')}/reject", {"json": {"reason": "no"}}),
        dict.fromkeys(MANAGERS, 200)),
    ("POST", "/agreements/{agreement_id}/amend"): Entry(
        lambda api, own: (f"/agreements/{api.agreement()}/amend", {"json": {"epsilon_add": 1.0, "reason": "more"}}),
        dict.fromkeys(MANAGERS, 200)),
    ("POST", "/agreements/{agreement_id}/revoke"): Entry(
        lambda api, own: (f"/agreements/{api.agreement()}/revoke", {"json": {"reason": "role matrix"}}),
        dict.fromkeys(MANAGERS, 200)),
    # stewards decide their organisation's datasets' parts of agreements, and suspend their use
    ("GET", "/stewardship/parts"): Entry(_fixed("/stewardship/parts"), {"steward": 200}),
    ("POST", "/agreements/{agreement_id}/datasets/{name}/approve"): Entry(_part("approve", {"epsilon": 0.5}),
                                                                          {"steward": 200}),
    ("POST", "/agreements/{agreement_id}/datasets/{name}/reject"): Entry(_part("reject", {"reason": "no"}),
                                                                         {"steward": 200}),
    ("POST", "/datasets/{name}/suspend"): Entry(_suspension("suspend"), {"steward": 200}),
    ("POST", "/datasets/{name}/resume"): Entry(_suspension("resume"), {"steward": 200}),
    # jobs: developers run their own; auditors read all; operators decide, they do not read results
    ("POST", "/explain"): Entry(
        lambda api, own: ("/explain", {"json": {"sql": COUNT_BY_DISTRICT, "epsilon": 0.1,
                                                "agreement_id": own.agreement_id}}), {"developer": 200}),
    ("POST", "/jobs"): Entry(
        lambda api, own: ("/jobs", {"json": {"sql": COUNT_BY_DISTRICT, "epsilon": 0.1,
                                             "agreement_id": own.agreement_id}}), {"developer": 201}),
    ("GET", "/jobs"): Entry(_fixed("/jobs"), {"developer": 200, "auditor": 200}),
    ("GET", "/jobs/{job_id}"): Entry(lambda api, own: (f"/jobs/{own.job_id}", {}), {"developer": 200, "auditor": 200}),
    ("POST", "/jobs/{job_id}/cancel"): Entry(lambda api, own: (f"/jobs/{own.job_id}/cancel", {}), {"developer": 200}),
    # the audit log is the auditors'
    ("GET", "/audit"): Entry(_fixed("/audit"), {"auditor": 200}),
    ("GET", "/audit/verify"): Entry(_fixed("/audit/verify"), {"auditor": 200}),
    ("GET", "/audit/checkpoints"): Entry(_fixed("/audit/checkpoints"), {"auditor": 200}),
    ("GET", "/audit/export"): Entry(_fixed("/audit/export", params={"format": "csv"}), {"auditor": 200}),
}


@pytest.fixture(scope="module")
def own(api: Api) -> Own:
    agreement_id = api.agreement()
    return Own(agreement_id, api.job("developer", agreement_id)["id"])


def test_every_route_has_an_entry(api: Api) -> None:
    served = app_routes(api.app)
    assert served - ACCESS.keys() - _console(served) == set(), "add these routes to ACCESS: who may call them?"
    assert ACCESS.keys() - served == set(), "ACCESS names routes the app does not serve"


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "no-token")
@pytest.mark.parametrize("route", sorted(ACCESS), ids=lambda r: f"{r[0]} {r[1]}")
def test_access(api: Api, own: Own, route: tuple[str, str], caller: str | None) -> None:
    entry = ACCESS[route]
    url, kwargs = entry.call(api, own)
    response = api.request(caller, route[0], url, **kwargs)
    expected = entry.expected(caller)
    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "token" in response.json()["error"]["message"]
    elif expected == 403:
        error = response.json()["error"]
        assert error["code"] == "forbidden"
        assert caller in error["message"]  # "... you are signed in as auditor" says why


def test_auditors_read_everything_and_change_nothing() -> None:
    """The policy itself, not only the app's answers: a table edit that lets auditors write fails."""
    for (method, path), entry in ACCESS.items():
        if entry.public or path == "/stewardship/parts":  # a steward's own queue: auditors read every
            continue  # part on its agreement (GET /agreements/{agreement_id}) instead
        assert entry.expected("auditor") == (200 if method == "GET" else 403), f"{method} {path}"


def test_operators_never_read_results() -> None:
    for path in ("/jobs", "/jobs/{job_id}", "/audit", "/audit/export"):
        assert all(ACCESS["GET", path].expected(role) == 403 for role in MANAGERS), path


# -- developers are invisible to each other ------------------------------------------------

_FOREIGN = [
    ("GET", "/agreements/{agreement}", {}),
    ("GET", "/jobs/{job}", {}),
    ("GET", "/jobs/{job}?wait=1", {}),
    ("POST", "/jobs/{job}/cancel", {}),
    ("POST", "/jobs", {"json": {"sql": COUNT_BY_DISTRICT, "epsilon": 0.1, "agreement_id": "{agreement}"}}),
    ("POST", "/explain", {"json": {"sql": COUNT_BY_DISTRICT, "epsilon": 0.1, "agreement_id": "{agreement}"}}),
]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _fill(template: Any, agreement: str, job: str) -> Any:
    if isinstance(template, str):
        return template.format(agreement=agreement, job=job)
    if isinstance(template, dict):
        return {k: _fill(v, agreement, job) for k, v in template.items()}
    return template


def _anonymous(error: dict[str, Any]) -> dict[str, Any]:
    """An error with every id blanked: what is left must not tell whose the id was."""
    return {k: _UUID.sub("<id>", v) if isinstance(v, str) else v for k, v in error.items() if k != "job_id"}


@pytest.mark.parametrize("method,url,kwargs", _FOREIGN, ids=[f"{m} {u}" for m, u, _ in _FOREIGN])
def test_another_developers_things_are_not_found(api: Api, own: Own, method: str, url: str, kwargs: dict) -> None:
    """404, never 403, and the same answer as for an id that does not exist at all."""
    stranger = api.developer()

    def call(agreement: str, job: str):
        return api.request(stranger, method, _fill(url, agreement, job), **_fill(kwargs, agreement, job))

    theirs, nobodys = call(own.agreement_id, own.job_id), call(str(uuid.uuid4()), str(uuid.uuid4()))
    assert theirs.status_code == nobodys.status_code == 404, theirs.text
    assert theirs.json()["error"]["code"] == "not_found"
    assert _anonymous(theirs.json()["error"]) == _anonymous(nobodys.json()["error"])


def test_lists_show_a_developer_only_their_own(api: Api, own: Own) -> None:
    stranger = api.developer()
    mine = api.agreement(stranger)
    api.job(stranger, mine)
    agreements = api.get(stranger, "/agreements").json()
    jobs = api.get(stranger, "/jobs").json()
    assert [a["id"] for a in agreements] == [mine]
    assert {j["agreement_id"] for j in jobs} == {mine}
    assert {j["developer_id"] for j in jobs} == {api.users[stranger].id}
    assert api.get(stranger, "/jobs", params={"agreement_id": own.agreement_id}).json() == []
    # the owner and the auditors still see the other developer's job
    assert own.job_id in {j["id"] for j in api.get("developer", "/jobs").json()}
    assert own.job_id in {j["id"] for j in api.get("auditor", "/jobs", params={"limit": 1000}).json()}


def test_a_developer_cannot_cancel_or_reuse_through_anothers_job(api: Api, own: Own) -> None:
    """The other developer's failed attempts leave the owner's job and budget as they were."""
    before = api.get("developer", f"/jobs/{own.job_id}").json()
    spent = api.spent("developer", own.agreement_id)
    stranger = api.developer()
    api.post(stranger, f"/jobs/{own.job_id}/cancel")
    api.post(stranger, "/jobs", json={"sql": COUNT_BY_DISTRICT, "epsilon": 0.1, "agreement_id": own.agreement_id})
    assert api.get("developer", f"/jobs/{own.job_id}").json() == before
    assert api.spent("developer", own.agreement_id) == spent


# -- the console: HTML pages behind a session cookie ----------------------------------------
# Its pages reuse the API's role dependencies (sandbox/web/session.py), so the per-role answers
# are the API's, tested above; the console's own tests cover the pages. What holds for every
# console route, present or future, is checked here: nothing without a session.

CONSOLE = "/console"


def _console(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(method, path) for method, path in routes if path == CONSOLE or path.startswith(CONSOLE + "/")}


def _public_page(method: str, path: str) -> bool:
    """Pages anyone may see: signing in, the style sheet, the language switch (a preference of the
    browser, which then goes back to a console page) and the public register."""
    return (method, path) in (("GET", "/console/signin"), ("GET", "/console/language"),
                              ("GET", "/console/register")) or \
        path.startswith("/console/static/")


@pytest.mark.parametrize("who", [None, "developer", "auditor"], ids=["no-token", "developer", "auditor"])
def test_console_routes_need_a_session(api: Api, who: str | None) -> None:
    """A bearer token is not a console session: without the cookie every page sends the
    browser to sign in, and every form is refused (no session, so no valid CSRF token)."""
    routes = _console(app_routes(api.app))
    assert routes, "the console is not mounted"
    api.client.cookies.clear()
    try:
        for method, path in sorted(routes):
            url = re.sub(r"\{[^}]+\}", "1", path)
            response = api.request(who, method, url, data={"reason": "x"} if method == "POST" else None)
            if _public_page(method, path):
                assert response.status_code == (303 if path == "/console/language" else 200), f"{method} {path}"
            elif method == "GET":
                assert response.status_code == 303, f"{method} {path}: {response.status_code}"
                assert response.headers["location"].startswith("/console/signin?next="), path
            else:
                assert response.status_code in (401, 403), f"{method} {path}: {response.status_code}"
    finally:
        api.client.cookies.clear()
