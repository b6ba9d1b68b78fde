"""Amendments, licence reinstatement and the searchable list of agreements over HTTP: the answers
callers get (status, body, the audit event), and the filters of `GET /agreements`."""

from __future__ import annotations

import uuid

import pytest

from sandbox import accounts, agreements
from tests.api.conftest import Api


def test_an_operator_tops_up_extends_and_widens_and_the_developer_sees_it(api: Api) -> None:
    developer = api.developer()
    agreement_id = api.agreement(developer, epsilon=0.2, valid_to="2099-01-01",
                                 datasets={"residents": ["district", "age", "sex"]})
    narrowed = api.post("operator", f"/agreements/{agreement_id}/amend",
                        json={"datasets": {"residents": ["district"]}, "reason": "district only, for now"})
    assert narrowed.status_code == 200 and narrowed.json()["datasets"] == {"residents": ["district"]}
    refused = api.post(developer, "/jobs", json={"sql": "SELECT sex, COUNT(*) FROM residents GROUP BY sex",
                                                 "epsilon": 0.1, "agreement_id": agreement_id})
    assert refused.status_code == 403 and "does not cover column(s) sex" in refused.text
    api.job(developer, agreement_id, epsilon=0.2)

    body = {"epsilon_add": 0.5, "valid_to": "2100-01-01", "datasets": {"residents": ["district", "sex"]},
            "reason": "second phase: by sex too"}
    amended = api.post("operator", f"/agreements/{agreement_id}/amend", json=body)
    assert amended.status_code == 200, amended.text
    seen = api.get(developer, f"/agreements/{agreement_id}").json()
    assert seen == amended.json()
    assert seen["status"] == "active" and seen["budget_epsilon"] == pytest.approx(0.7)
    assert seen["remaining_epsilon"] == pytest.approx(0.5) and seen["valid_to"] == "2100-01-01"
    assert seen["decision_reason"] == "second phase: by sex too" and seen["decided_at"]
    assert seen["requested_datasets"] == {"residents": ["district", "age", "sex"]}
    api.job(developer, agreement_id, sql="SELECT sex, COUNT(*) FROM residents GROUP BY sex", epsilon=0.1)

    [event] = [e for e in api.audit(agreement_id=agreement_id, action="agreement.amended")
               if e["details"]["reason"] == body["reason"]]
    assert event["actor"] == api.users["operator"].id
    assert event["details"]["changes"] == {
        "budget_epsilon": [0.2, 0.7], "valid_to": ["2099-01-01", "2100-01-01"],
        "datasets": [{"residents": ["district"]}, {"residents": ["district", "sex"]}],
        "status": ["exhausted", "active"]}
    assert api.get("auditor", "/audit/verify").json()["ok"] is True


@pytest.mark.parametrize("body,status,code,words", [
    ({"epsilon_add": 1.0}, 422, "invalid_request", "reason"),
    ({"epsilon_add": 1.0, "reason": ""}, 422, "invalid_request", "reason"),
    ({"epsilon_add": 1.0, "reason": "r", "min_count": 5}, 422, "invalid_request", "min_count"),
    ({"epsilon_add": -1.0, "reason": "r"}, 422, "invalid_request", "epsilon_add"),
    ({"reason": "nothing"}, 422, "invalid_parameter", "Nothing to amend"),
    ({"datasets": {"enterprises": None}, "reason": "wider"}, 422, "invalid_parameter",
     "Dataset 'enterprises' was not requested (the request names residents). An amendment stays within the "
     "request; the developer requests a new agreement for anything beyond the request."),
    ({"datasets": {"residents": ["incme"]}, "reason": "typo"}, 422, "invalid_parameter",
     "Dataset 'residents' has no queryable column(s) incme."),
    ({"valid_to": "2020-06-01", "reason": "earlier"}, 422, "invalid_parameter", "must lie in the future"),
    ({"valid_to": "next week", "reason": "when"}, 422, "invalid_request", "is not an ISO-8601 date"),
])
def test_an_amendment_that_cannot_be_is_refused_with_what_to_do(api: Api, body, status, code, words) -> None:
    agreement_id = api.agreement()
    response = api.post("operator", f"/agreements/{agreement_id}/amend", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"], error
    assert api.audit(agreement_id=agreement_id, action="agreement.amended") == []


def test_a_revoked_or_unknown_agreement_is_not_amended(api: Api) -> None:
    agreement_id = api.agreement()
    assert api.post("operator", f"/agreements/{agreement_id}/revoke", json={"reason": "over"}).status_code == 200
    revoked = api.post("operator", f"/agreements/{agreement_id}/amend", json={"epsilon_add": 1, "reason": "more"})
    assert revoked.status_code == 409
    assert revoked.json()["error"]["message"].endswith("The developer requests a new agreement.")
    again = api.post("operator", f"/agreements/{agreement_id}/revoke", json={"reason": "again"})
    assert "only an active agreement can be revoked" in again.json()["error"]["message"]
    unknown = api.post("operator", f"/agreements/{uuid.uuid4()}/amend", json={"epsilon_add": 1, "reason": "more"})
    assert unknown.status_code == 404


def test_a_misspelt_request_suggests_the_dataset_meant(api: Api) -> None:
    response = api.post("developer", "/agreements", json={
        "purpose": "p", "legal_basis": "b", "datasets": {"resident": None}, "valid_from": "2026-01-01",
        "valid_to": "2027-01-01", "epsilon": 1})
    assert response.status_code == 422
    assert "Unknown dataset 'resident'. Did you mean 'residents'?" in response.json()["error"]["message"]


def test_a_suspended_developer_is_told_why_until_the_licence_is_reinstated(api: Api) -> None:
    developer = api.developer()
    agreement_id = api.agreement(developer)
    licence = accounts.licence_of(api.store, api.users[developer].id)
    suspended = api.post("operator", f"/licences/{licence['id']}/suspend", json={"reason": "security review"})
    assert suspended.json()["status_reason"] == "security review"
    refused = api.post(developer, "/jobs", json={"sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.1,
                                                 "agreement_id": agreement_id})
    assert refused.status_code == 403
    assert "is suspended (the operator's reason: security review); contact the operator to have it reinstated." \
        in refused.json()["error"]["message"]

    missing = api.post("operator", f"/licences/{licence['id']}/reinstate", json={"reason": ""})
    assert missing.status_code == 422
    reinstated = api.post("operator", f"/licences/{licence['id']}/reinstate", json={"reason": "review done"})
    assert reinstated.status_code == 200
    assert reinstated.json()["status"] == "active" and reinstated.json()["status_reason"] == "review done"
    twice = api.post("operator", f"/licences/{licence['id']}/reinstate", json={"reason": "again"})
    assert twice.status_code == 409 and "only a suspended licence can be reinstated" in twice.text
    api.job(developer, agreement_id)
    [listed] = [lic for lic in api.get("auditor", "/licences").json() if lic["id"] == licence["id"]]
    assert listed["status"] == "active" and listed["status_reason"] == "review done"
    events = api.audit(action="licence.reinstated")
    assert events[-1]["details"] == {"licence_id": licence["id"], "developer_id": api.users[developer].id,
                                     "reason": "review done"}


@pytest.fixture(scope="module")
def history(api: Api) -> dict[str, str]:
    """Agreements of two organisations, decided on purpose: approved, rejected, revoked, one waiting."""
    tag = uuid.uuid4().hex[:6]
    _, lin, _ = accounts.create_licence(api.store, api.users["operator"], name=f"林 {tag}",
                                        organisation=f"鹭岛数据 {tag}", licence_number=f"XM-H-{tag}-1",
                                        valid_from="2020-01-01", valid_to="2100-01-01")
    _, chen, _ = accounts.create_licence(api.store, api.users["operator"], name=f"Chen {tag}",
                                         organisation=f"Gulangyu Analytics {tag}", licence_number=f"XM-H-{tag}-2",
                                         valid_from="2020-01-01", valid_to="2100-01-01")
    known = {"residents": set(), "enterprises": set()}

    def request(who, purpose: str, datasets: list[str]) -> str:
        return agreements.request(api.store, who, purpose=f"{purpose} {tag}", legal_basis="b",
                                  datasets=dict.fromkeys(datasets), valid_from="2020-01-01", valid_to="2100-01-01",
                                  epsilon=1.0, delta=0.0, known=known)["id"]

    ids = {"approved": request(lin, "Income by district", ["residents"]),
           "rejected": request(lin, "Firms by sector", ["enterprises"]),
           "revoked": request(chen, "Income and firms", ["residents", "enterprises"]),
           "waiting": request(chen, "Households", ["residents"])}
    operator = api.users["operator"]
    agreements.approve(api.store, operator, ids["approved"])
    agreements.reject(api.store, operator, ids["rejected"], "not needed")
    agreements.approve(api.store, operator, ids["revoked"])
    agreements.revoke(api.store, operator, ids["revoked"], "study over")
    return ids | {"tag": tag}


@pytest.mark.parametrize("params,expected", [
    ({}, ["approved", "rejected", "revoked", "waiting"]),
    ({"decided": True}, ["approved", "rejected", "revoked"]),
    ({"status": ["rejected", "revoked"]}, ["rejected", "revoked"]),
    ({"organisation": "鹭岛"}, ["approved", "rejected"]),
    ({"developer": "chen"}, ["revoked", "waiting"]),
    ({"purpose": "INCOME"}, ["approved", "revoked"]),
    ({"dataset": "enterprises"}, ["rejected", "revoked"]),
    ({"q": "gulangyu"}, ["revoked", "waiting"]),
    ({"q": "firms"}, ["rejected", "revoked"]),
    ({"q": "企业登记"}, ["rejected", "revoked"]),  # enterprises' Chinese title
    ({"q": "residents", "decided": True}, ["approved", "revoked"]),
    ({"decided_since": "2000-01-01", "decided_until": "2999-01-01"}, ["approved", "rejected", "revoked"]),
    ({"decided_until": "2000-01-01"}, []),
])
def test_the_list_searches_and_filters(api: Api, history: dict[str, str], params, expected: list[str]) -> None:
    tagged = {"q": history["tag"]} if "purpose" in params else {"purpose": history["tag"]}  # this fixture's only
    response = api.get("auditor", "/agreements", params=params | tagged)
    assert response.status_code == 200, response.text
    found = sorted(name for name, id_ in history.items() if id_ in {a["id"] for a in response.json()})
    assert found == expected
    assert int(response.headers["X-Total-Count"]) == len(expected)


def test_the_list_pages_newest_decision_first_with_names(api: Api, history: dict[str, str]) -> None:
    params = {"q": history["tag"], "order": "decided", "limit": 2}
    first = api.get("operator", "/agreements", params=params)
    second = api.get("operator", "/agreements", params=params | {"offset": 2})
    assert first.headers["X-Total-Count"] == second.headers["X-Total-Count"] == "4"
    names = {id_: name for name, id_ in history.items()}
    assert [names[a["id"]] for a in first.json() + second.json()] == ["revoked", "rejected", "approved", "waiting"]
    assert first.json()[0]["developer_name"].startswith("Chen ")
    assert first.json()[0]["organisation"].startswith("Gulangyu Analytics ")
    assert api.get("operator", "/agreements", params={"limit": 0}).status_code == 422
    assert api.get("operator", "/agreements", params={"status": "nonsense"}).status_code == 422
