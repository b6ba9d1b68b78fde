"""Data stewards through a real server on a loopback socket: a fused request over two
departments' datasets stays inactive until both stewards and the operator have approved it, a
steward's suspension stops the next job at once, and the auditor finds every step in the log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import accounts
from sandbox.store import Store
from tests.api.conftest import bearer
from tests.support.server import running_server

FUSED = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m "
         "ON r.person_id = m.person_id GROUP BY r.district")


@pytest.fixture(scope="module")
def live(demo_catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('stewardship') / 'sandbox.db'}"
    store = Store(database_url)
    with store.transaction() as conn:
        admin, admin_token = accounts.create_user(conn, "Admin", "admin")
        tokens = {"admin": admin_token}
        for role in ("operator", "auditor"):
            tokens[role] = accounts.create_user(conn, role.title(), role, by=admin)[1]
    store.close()
    with running_server(demo_catalog.data_dir, database_url) as server:
        clients = {who: httpx.Client(base_url=server.url, headers=bearer(token), timeout=60)
                   for who, token in tokens.items()}
        try:
            yield {"clients": clients, "url": server.url, "owners": demo_catalog.owners()}
        finally:
            for client in clients.values():
                client.close()


def call(live: dict[str, Any], who: str, method: str, url: str, expect: int, **kwargs: Any) -> Any:
    response = live["clients"][who].request(method, url, **kwargs)
    assert response.status_code == expect, f"{who} {method} {url}: {response.status_code} {response.text}"
    return response.json()


def test_a_fused_request_needs_both_stewards_and_the_operator_and_a_suspension_stops_the_next_job(live) -> None:
    owners = live["owners"]
    for who, dataset in (("police", "residents"), ("health", "medical_visits")):
        made = call(live, "admin", "POST", "/users", 201, json={"name": f"{who} steward", "role": "steward",
                                                                   "organisation": owners[dataset]})
        assert made["organisation"] == owners[dataset]
        live["clients"][who] = httpx.Client(base_url=live["url"], headers=bearer(made["token"]), timeout=60)
    licensed = call(live, "operator", "POST", "/licences", 201, json={
        "name": "Dr. Chen", "organisation": "Xiamen University", "licence_number": f"XM-{uuid.uuid4().hex[:8]}",
        "valid_from": "2026-01-01", "valid_to": "2100-01-01"})
    live["clients"]["developer"] = httpx.Client(base_url=live["url"], headers=bearer(licensed["token"]), timeout=60)
    requested = call(live, "developer", "POST", "/agreements", 201, json={
        "purpose": "Health-care use by district", "legal_basis": "Public-interest research",
        "datasets": {"residents": None, "medical_visits": None}, "valid_from": "2026-01-01",
        "valid_to": "2100-01-01", "epsilon": 2.0})
    agreement_id = requested["id"]
    assert {p["dataset"]: p["status"] for p in requested["parts"]} == {"medical_visits": "pending",
                                                                       "residents": "pending"}

    def query(epsilon: float, expect: int) -> dict[str, Any]:
        return call(live, "developer", "POST", "/jobs", expect, json={
            "sql": FUSED, "epsilon": epsilon, "agreement_id": agreement_id, "wait": 30})

    approved = call(live, "operator", "POST", f"/agreements/{agreement_id}/approve", 200, json={"reason": "ok"})
    assert approved["status"] == "awaiting"
    assert "data stewards" in query(0.1, 403)["error"]["message"]

    queue = call(live, "police", "GET", "/stewardship/parts", 200, params={"status": "pending"})
    assert [(p["agreement_id"], p["dataset"]) for p in queue] == [(agreement_id, "residents")]
    assert call(live, "health", "GET", f"/agreements/{agreement_id}", 200)["status"] == "awaiting"
    call(live, "health", "POST", f"/agreements/{agreement_id}/datasets/residents/approve", 404, json={})
    call(live, "police", "POST", f"/agreements/{agreement_id}/datasets/residents/approve", 200,
         json={"reason": "district level only"})
    assert call(live, "developer", "GET", f"/agreements/{agreement_id}", 200)["status"] == "awaiting"
    assert query(0.1, 403)["error"]["code"] == "agreement_inactive"

    part = call(live, "health", "POST", f"/agreements/{agreement_id}/datasets/medical_visits/approve", 200,
                json={"epsilon": 1.0, "valid_to": "2099-01-01", "round_to": 20, "reason": "one epsilon for our data"})
    assert part["status"] == "approved" and part["budget_epsilon"] == 1.0 and part["valid_to"] == "2099-01-01"
    assert (part["min_count"], part["round_to"]) == (None, 20)
    assert call(live, "developer", "GET", f"/agreements/{agreement_id}", 200)["status"] == "active"
    assert query(0.1, 201)["status"] == "released"

    suspended = call(live, "health", "POST", "/datasets/medical_visits/suspend", 200,
                     json={"reason": "records under correction", "agreement_id": agreement_id})
    assert [p["suspended"] for p in suspended] == [True]
    refused = query(0.2, 403)["error"]
    assert refused["code"] == "agreement_inactive" and "records under correction" in refused["message"]
    call(live, "health", "POST", "/datasets/medical_visits/resume", 200,
         json={"reason": "corrected", "agreement_id": agreement_id})
    assert query(0.2, 201)["status"] == "released"

    events = call(live, "auditor", "GET", "/audit", 200, params={"agreement_id": agreement_id, "limit": 100})
    steps = [(e["action"], e["role"], e["dataset"]) for e in reversed(events["events"])
             if not e["action"].startswith("job.")]
    assert steps == [("agreement.requested", "developer", None), ("agreement.approved", "operator", None),
                     ("dataset.approved", "steward", "residents"), ("dataset.approved", "steward", "medical_visits"),
                     ("agreement.activated", "system", None), ("dataset.suspended", "steward", "medical_visits"),
                     ("dataset.resumed", "steward", "medical_visits")]
    assert call(live, "auditor", "GET", "/audit/verify", 200)["ok"] is True


def test_a_steward_is_bound_to_an_owner_the_catalog_knows(live) -> None:
    error = call(live, "admin", "POST", "/users", 422, json={"name": "x", "role": "steward",
                                                            "organisation": "Ministry of Nothing"})["error"]
    assert "No dataset policy names the owner" in error["message"]
    assert call(live, "admin", "POST", "/users", 422, json={"name": "x", "role": "steward"})["error"]["code"] == \
        "invalid_parameter"
