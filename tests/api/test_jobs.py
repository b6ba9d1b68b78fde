"""Jobs over HTTP: reuse, idempotency, free explains, rejections that say what to do, agreements
and licences checked at run time, cancel and poll.

Each test licenses its own developer with its own agreement, so budgets and states never leak
between tests. Tests that need a job to stay queued or running hold the engine at a gate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from sandbox import accounts
from sandbox.store.schema import agreements
from tests.api.conftest import COUNT_BY_DISTRICT, Api

SPACED = "select   district ,\n\tcount( * )\nFROM residents\n  Group By district ;"
AVERAGE_INCOME = "SELECT AVG(monthly_income) FROM residents"


@pytest.fixture
def dev(api: Api) -> str:
    return api.developer()


def _query(api: Api, who: str, agreement_id: str, sql: str = COUNT_BY_DISTRICT, epsilon: float = 0.1, **extra: Any):
    return api.post(who, "/jobs", json={"sql": sql, "epsilon": epsilon, "agreement_id": agreement_id, "wait": 30}
                    | extra.pop("body", {}), **extra)


def _job_events(api: Api, job_id: str) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in api.audit(job_id=job_id)]


# -- reuse: the same question gets the same answer, for free ---------------------------------


def test_an_identical_query_is_reused_for_free(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    first = api.job(dev, agreement)
    spent = api.spent(dev, agreement)
    again = api.job(dev, agreement)
    assert spent == pytest.approx(0.1)
    assert again["id"] != first["id"]
    assert again["reused"] is True and again["reused_from"] == first["id"]
    assert again["result"]["rows"] == first["result"]["rows"] and again["result_hash"] == first["result_hash"]
    assert again["charge_epsilon"] == 0 and again["charge_delta"] == 0 and again["data_touched"] is False
    assert api.spent(dev, agreement) == spent
    (event,) = api.audit(job_id=again["id"])
    assert event["action"] == "job.reused" and event["details"]["reused_from"] == first["id"]


@pytest.mark.parametrize("sql", [
    SPACED,
    "SELECT district, COUNT(*) FROM residents GROUP BY district -- again",
], ids=["whitespace-and-keyword-case", "comment"])
def test_normalized_sql_is_reused(api: Api, dev: str, sql: str) -> None:
    agreement = api.agreement(dev)
    first = api.job(dev, agreement)
    again = api.job(dev, agreement, sql=sql)
    assert again["reused_from"] == first["id"] and again["charge_epsilon"] == 0
    assert again["result"]["rows"] == first["result"]["rows"]
    assert api.spent(dev, agreement) == pytest.approx(0.1)


def test_identifiers_in_another_case_are_the_same_query(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    first = api.job(dev, agreement)
    again = _query(api, dev, agreement, "SELECT DISTRICT, COUNT(*) FROM Residents GROUP BY DISTRICT")
    assert again.status_code == 201, again.text
    assert again.json()["reused_from"] == first["id"]


def test_a_different_epsilon_is_a_new_query(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    first = api.job(dev, agreement, epsilon=0.1)
    other = api.job(dev, agreement, epsilon=0.2)
    assert other["reused"] is False and other["reused_from"] is None
    assert other["charge_epsilon"] == pytest.approx(0.2)
    assert other["result_hash"] != first["result_hash"]
    assert api.spent(dev, agreement) == pytest.approx(0.3)


def test_reuse_stays_within_one_agreement(api: Api, dev: str) -> None:
    first, second = api.agreement(dev), api.agreement(dev)
    api.job(dev, first)
    other = api.job(dev, second)
    assert other["reused"] is False and api.spent(dev, second) == pytest.approx(0.1)


def test_an_exhausted_agreement_still_serves_earlier_releases(api: Api, dev: str) -> None:
    agreement = api.agreement(dev, epsilon=0.2)
    first = api.job(dev, agreement, epsilon=0.2)
    assert api.get(dev, f"/agreements/{agreement}").json()["status"] == "exhausted"
    again = _query(api, dev, agreement, epsilon=0.2)
    assert again.status_code == 201, again.text
    assert again.json()["reused_from"] == first["id"]


def test_an_idempotency_key_replay_returns_the_same_job_charged_once(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    key = {"Idempotency-Key": "report-2026-q4-table-1"}
    first = _query(api, dev, agreement, AVERAGE_INCOME, 0.3, headers=key)
    replay = _query(api, dev, agreement, AVERAGE_INCOME, 0.3, headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["result"] == first.json()["result"]
    assert api.spent(dev, agreement) == pytest.approx(0.3)
    assert _job_events(api, first.json()["id"]) == [("job.submitted", "ok"), ("job.released", "ok")]
    # the key belongs to this developer: another one using it gets their own job
    stranger = api.developer()
    theirs = _query(api, stranger, api.agreement(stranger), AVERAGE_INCOME, 0.3, headers=key)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


# -- explain: free, and on the record -------------------------------------------------------


def test_explain_is_free_and_audited(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    response = api.post(dev, "/explain", json={"sql": AVERAGE_INCOME, "epsilon": 0.5, "agreement_id": agreement})
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["dataset"] == "residents" and plan["epsilon"] == 0.5
    assert plan["columns"][0]["function"] == "avg" and plan["primitives"]
    assert "residents" in plan["bounded_sql"]
    assert api.spent(dev, agreement) == 0
    assert api.get(dev, "/jobs").json() == []  # nothing ran
    (event,) = api.audit(actor=api.users[dev].id, action="job.explained")
    assert event["outcome"] == "ok" and event["agreement_id"] == agreement
    assert event["details"]["sql"] == AVERAGE_INCOME and event["details"]["epsilon"] == 0.5


def test_a_rejected_explain_is_audited_too(api: Api, dev: str) -> None:
    response = api.post(dev, "/explain", json={"sql": "SELECT age FROM residents", "epsilon": 0.5})
    assert response.status_code == 400 and response.json()["error"]["code"] == "sql_rejected"
    (event,) = api.audit(actor=api.users[dev].id, action="job.explained")
    assert event["outcome"] == "rejected" and event["details"]["error"]["code"] == "sql_rejected"


# -- refusals say what, where and what to do, and are recorded -----------------------------


def test_rejected_sql_points_at_the_problem_and_is_recorded(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    response = _query(api, dev, agreement, "SELECT district, COUNT(*)\nFROM residents\nWHERE person_id = 42\n"
                                           "GROUP BY district")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "sql_rejected" and error["rule"] == "no_identifiers"
    assert (error["line"], error["column"]) == (3, 7)
    assert error["pointer"].splitlines() == ["WHERE person_id = 42", "      ^"]
    assert "line 3, column 7" in error["message"] and "targets single persons" in error["reason"]
    assert error["fix"] and error["message"].endswith(error["fix"])
    job = api.get(dev, f"/jobs/{error['job_id']}").json()
    assert job["status"] == "rejected" and job["error"]["code"] == "sql_rejected"
    assert job["charge_epsilon"] == 0 and job["result"] is None
    assert api.spent(dev, agreement) == 0
    (event,) = api.audit(job_id=error["job_id"])
    assert (event["action"], event["outcome"]) == ("job.rejected", "rejected")
    assert event["details"]["code"] == "sql_rejected" and event["details"]["reason"] == error["message"]
    assert event["agreement_id"] == agreement and event["actor"] == api.users[dev].id


def test_the_per_query_cap_is_enforced(api: Api, dev: str) -> None:
    agreement = api.agreement(dev, per_query_epsilon=0.2)
    response = _query(api, dev, agreement, epsilon=0.25)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded" and error["cap"] == 0.2 and "at most 0.2" in error["message"]
    assert api.spent(dev, agreement) == 0


def test_a_revoked_agreement_stops_jobs_at_once(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    api.job(dev, agreement)
    revoked = api.post("operator", f"/agreements/{agreement}/revoke", json={"reason": "purpose changed"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    for sql in (AVERAGE_INCOME, COUNT_BY_DISTRICT):  # a new query, and one with a stored release
        response = _query(api, dev, agreement, sql)
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "agreement_inactive" and error["status"] == "revoked"
        assert "contact the operator" in error["message"]
    assert api.spent(dev, agreement) == pytest.approx(0.1)


def test_an_expired_agreement_stops_jobs(api: Api, dev: str) -> None:
    agreement = api.agreement(dev, status="requested")
    ends = datetime.now(UTC) + timedelta(seconds=1)
    approved = api.post("operator", f"/agreements/{agreement}/approve",
                        json={"valid_to": ends.isoformat(), "reason": "a short window"})
    assert approved.status_code == 200 and approved.json()["valid_to"] == ends.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    api.job(dev, agreement)
    time.sleep(max((ends - datetime.now(UTC)).total_seconds(), 0) + 0.05)
    response = _query(api, dev, agreement, AVERAGE_INCOME)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "agreement_inactive" and error["status"] == "expired"
    assert "request a new agreement" in error["message"]
    assert api.spent(dev, agreement) == pytest.approx(0.1)


def test_an_expiry_is_recorded(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    with api.store.transaction() as conn:  # time passes
        conn.execute(update(agreements).where(agreements.c.id == agreement).values(valid_to="2021-01-01"))
    assert _query(api, dev, agreement).json()["error"]["status"] == "expired"
    assert api.get(dev, f"/agreements/{agreement}").json()["status"] == "expired"
    assert [e["action"] for e in api.audit(agreement_id=agreement)][-2:] == ["agreement.expired", "job.rejected"]


def test_a_suspended_licence_stops_jobs(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    api.job(dev, agreement)
    with api.store.read() as conn:
        licence = accounts.licence_of(conn, api.users[dev].id)
    suspended = api.post("operator", f"/licences/{licence['id']}/suspend", json={"reason": "audit finding"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    response = _query(api, dev, agreement, AVERAGE_INCOME)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden" and "suspended" in error["message"] and "operator" in error["message"]
    assert api.spent(dev, agreement) == pytest.approx(0.1)
    (event,) = api.audit(job_id=error["job_id"])
    assert event["action"] == "job.rejected" and event["details"]["code"] == "forbidden"


def test_dates_must_be_iso(api: Api, dev: str) -> None:
    """A validity window is compared as text, so a free-form date would silently mean 'forever'."""
    agreement = api.agreement(dev, status="requested")
    response = api.post("operator", f"/agreements/{agreement}/approve", json={"valid_to": "next summer"})
    assert response.status_code == 422
    assert "ISO-8601" in response.json()["error"]["message"]
    assert api.get(dev, f"/agreements/{agreement}").json()["status"] == "requested"


# -- asynchronous jobs: poll and cancel --------------------------------------------------------


@contextmanager
def engine_gate(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold every job at the engine until the gate opens. The app runs one job at a time
    (workers=1), so while one job waits here the next ones stay queued."""
    gate = threading.Event()
    engine = api.app.state.services.jobs.engine
    execute = engine.execute

    def gated(plan):
        gate.wait(30)
        return execute(plan)

    monkeypatch.setattr(engine, "execute", gated)
    try:
        yield gate
    finally:
        gate.set()


def _until(api: Api, who: str, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (job := api.get(who, f"/jobs/{job_id}").json())["status"] != status:
        assert time.monotonic() < deadline, f"job stayed {job['status']}"
        time.sleep(0.01)
    return job


def test_poll_a_job_until_it_is_released(api: Api, dev: str, monkeypatch: pytest.MonkeyPatch) -> None:
    agreement = api.agreement(dev)
    with engine_gate(api, monkeypatch) as gate:
        submitted = _query(api, dev, agreement, body={"wait": 0})
        assert submitted.status_code == 201 and submitted.json()["status"] in ("queued", "running")
        job_id = submitted.json()["id"]
        running = _until(api, dev, job_id, "running")
        assert running["result"] is None and running["started_at"]
        stranger = api.developer()
        start = time.monotonic()
        assert api.get(stranger, f"/jobs/{job_id}", params={"wait": 5}).status_code == 404
        assert time.monotonic() - start < 2, "a stranger's poll must not wait for someone else's job"
        threading.Timer(0.2, gate.set).start()
        polled = api.get(dev, f"/jobs/{job_id}", params={"wait": 20})
    assert polled.status_code == 200
    job = polled.json()
    assert job["status"] == "released" and job["result"]["columns"] == ["district", "COUNT(*)"]
    assert job["charge_epsilon"] == pytest.approx(0.1)


def test_cancel_queued_running_and_finished_jobs(api: Api, dev: str, monkeypatch: pytest.MonkeyPatch) -> None:
    agreement = api.agreement(dev)
    done = api.job(dev, agreement, sql=AVERAGE_INCOME)
    with engine_gate(api, monkeypatch):
        running = _query(api, dev, agreement, epsilon=0.2, body={"wait": 0}).json()
        _until(api, dev, running["id"], "running")
        queued = _query(api, dev, agreement, epsilon=0.3, body={"wait": 0}).json()
        assert queued["status"] == "queued"
        assert api.spent(dev, agreement) == pytest.approx(0.6)

        cancelled = api.post(dev, f"/jobs/{queued['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["charge_epsilon"] == 0
        assert api.spent(dev, agreement) == pytest.approx(0.3)  # a queued job read nothing: refunded

        stopped = api.post(dev, f"/jobs/{running['id']}/cancel").json()
        assert stopped["status"] == "cancelled" and stopped["charge_epsilon"] == pytest.approx(0.2)
    after = api.get(dev, f"/jobs/{running['id']}", params={"wait": 10}).json()
    assert after["status"] == "cancelled" and after["result"] is None  # the engine's answer is dropped
    assert api.spent(dev, agreement) == pytest.approx(0.3)  # a running job may have read data: kept

    unchanged = api.post(dev, f"/jobs/{done['id']}/cancel")
    assert unchanged.status_code == 200 and unchanged.json() == api.get(dev, f"/jobs/{done['id']}").json()
    assert unchanged.json()["status"] == "released"

    assert _job_events(api, queued["id"]) == [("job.submitted", "ok"), ("job.cancelled", "cancelled")]
    events = api.audit(job_id=running["id"], action="job.cancelled")
    assert [e["details"].get("charge_kept") for e in events[:1]] == [True]
    assert api.get(dev, f"/jobs/{queued['id']}").json()["started_at"] is None  # it never ran


def test_an_idempotency_key_reused_for_another_request_is_refused(api: Api, dev: str) -> None:
    agreement = api.agreement(dev)
    key = {"Idempotency-Key": "one-key-one-request"}
    assert _query(api, dev, agreement, AVERAGE_INCOME, 0.3, headers=key).status_code == 201
    other = _query(api, dev, agreement, COUNT_BY_DISTRICT, 0.3, headers=key)
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"


def test_an_unexpected_error_is_a_500_with_an_id_never_a_refusal(api: Api, dev: str, monkeypatch, caplog) -> None:
    """A bug of ours (here: the compiler crashing) is not the developer's doing: no rejected job,
    no charge, no sql_rejected; a 500 `internal` whose id is in the server's log with the traceback."""
    from tests.web.conftest import TestClient  # imported there without starlette's warning about httpx

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a compiler bug")

    agreement_id = api.agreement(dev)
    monkeypatch.setattr("sandbox.jobs.service.compile_query", crash)
    client = TestClient(api.app, raise_server_exceptions=False)  # no lifespan: the session app's is running
    with caplog.at_level("ERROR", logger="sandbox"):
        response = client.post("/jobs", headers=api.headers(dev), json={
            "sql": COUNT_BY_DISTRICT, "epsilon": 0.1, "agreement_id": agreement_id})
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["code"] == "internal" and len(error["id"]) == 12 and error["id"] in error["message"]
    assert f"unexpected error {error['id']}" in caplog.text and "a compiler bug" in caplog.text
    assert api.get(dev, "/jobs", params={"agreement_id": agreement_id}).json() == [], "nothing recorded as refused"
    assert api.spent(dev, agreement_id) == 0
