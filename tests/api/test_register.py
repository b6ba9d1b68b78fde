"""The public register: no token needed; every approved agreement with exactly the listed fields;
nothing about requests that were not approved, no SQL, no results, no developers' names."""

from __future__ import annotations

import json

import pytest

from sandbox import accounts, agreements
from sandbox.register import FIELDS
from tests.api.conftest import Api

SECRET_SQL = "SELECT household_size, COUNT(*) AS secret_marker FROM residents GROUP BY household_size"


@pytest.fixture(scope="module")
def listed(api: Api) -> dict:
    """An approved agreement with one release (and the same query reused), a rejected request and
    a request still waiting, each from a developer of its own organisation."""
    made = {}
    for key, organisation in (("approved", "Open Data Lab"), ("rejected", "Hidden Rejected Org"),
                              ("waiting", "Hidden Waiting Org")):
        name = f"Developer {key} Zeta"
        with api.store.transaction() as conn:
            _, user, token = accounts.create_licence(
                conn, api.users["operator"], name=name, organisation=organisation,
                licence_number=f"REG-{key}-{api.store.url[-8:]}", valid_from="2020-01-01", valid_to="2100-01-01")
        api.users[name], api.tokens[name] = user, token
        made[key] = api.agreement(name, status="requested", epsilon=2.0)
    approved = api.post("operator", f"/agreements/{made['approved']}/approve",
                        json={"epsilon": 1.5, "reason": "approved"}).json()
    assert approved["status"] == "active"
    agreements.reject(api.store, api.users["operator"], made["rejected"], "secret rejection reason")
    job = api.job("Developer approved Zeta", made["approved"], sql=SECRET_SQL, epsilon=0.25)
    again = api.job("Developer approved Zeta", made["approved"], sql=SECRET_SQL, epsilon=0.25)
    assert again["reused"] is True
    made["result"] = job["result"]
    return made


def test_the_register_lists_approved_agreements_with_exactly_the_listed_fields(api: Api, listed) -> None:
    response = api.get(None, "/api/register")  # no token
    assert response.status_code == 200
    entries = {e["id"]: e for e in response.json()}
    assert all(list(e) == list(FIELDS) for e in entries.values())  # nothing but these, in this order
    entry = entries[listed["approved"]]
    assert entry == {
        "id": listed["approved"], "organisation": "Open Data Lab", "purpose": "API tests",
        "legal_basis": "Test data only", "datasets": ["residents"], "valid_from": "2020-01-01",
        "valid_to": "2100-01-01", "status": "active", "budget_epsilon": 1.5, "budget_delta": 1e-6,
        "spent_epsilon": 0.25, "spent_delta": 0.0, "releases": 1}  # the reused release counts once
    assert listed["rejected"] not in entries and listed["waiting"] not in entries
    assert {e["status"] for e in entries.values()} <= {"awaiting", "active", "exhausted", "expired", "revoked"}


@pytest.mark.parametrize("path", ["/api/register", "/register"])
def test_the_register_tells_nothing_it_should_not(api: Api, listed, path) -> None:
    text = api.client.get(path, follow_redirects=True).text
    assert "Open Data Lab" in text
    for secret in ("Hidden Rejected Org", "Hidden Waiting Org", "secret rejection reason", "Zeta", "secret_marker",
                   "household_size", "SELECT", api.users["Developer approved Zeta"].id):
        assert secret not in text, secret
    released = json.dumps(listed["result"])
    assert listed["result"] and released not in text


def test_the_register_page_speaks_both_languages_without_signing_in(api: Api, listed) -> None:
    english = api.client.get("/register", follow_redirects=True)
    assert english.status_code == 200 and "Public register of data-use agreements" in english.text
    assert "condition of access" in english.text and "Sign in" not in english.text.split("<main")[1][:200]
    chinese = api.client.get("/register", follow_redirects=True, headers={"Accept-Language": "zh-CN"})
    assert "数据使用协议公开登记簿" in chinese.text and "Open Data Lab" in chinese.text


def test_the_request_says_being_listed_is_a_condition_of_access(api: Api) -> None:
    schema = api.get(None, "/openapi.json").json()["components"]["schemas"]["AgreementRequest"]
    assert "condition of access" in schema["description"] and "/register" in schema["description"]
