"""Every method of the notebook client, against a real sandbox server."""

from __future__ import annotations

import io
import json
import math
import uuid

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import sandbox.client
from sandbox.client import Agreement, DatasetInfo, Explanation, NotConfigured, Release, Sandbox, Verification
from sandbox.errors import AgreementInactive, DatasetNotFound, Forbidden, InvalidParameter

DISTRICTS = ["Haicang", "Huli", "Jimei", "Siming", "Tong'an", "Xiang'an"]
SQL = "SELECT district, COUNT(*) AS residents, AVG(monthly_income) AS income FROM residents GROUP BY district"


def test_public_surface_is_exactly_this() -> None:
    assert sorted(sandbox.client.__all__) == [
        "Agreement", "DatasetInfo", "Explanation", "JobCancelled", "NotConfigured", "Release", "Sandbox",
        "SandboxUnreachable", "Verification"]
    assert all(hasattr(sandbox.client, name) for name in sandbox.client.__all__)


def test_configured_from_the_environment(live, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_URL", live.url)
    monkeypatch.setenv("SANDBOX_TOKEN", live.tokens["developer"])
    monkeypatch.setenv("SANDBOX_AGREEMENT", live.agreement_id)
    with Sandbox() as sb:
        assert sb.me()["role"] == "developer"
        assert sb.default_agreement == live.agreement_id
        assert live.tokens["developer"] not in repr(sb) and live.url in repr(sb)


def test_missing_configuration_says_what_to_set(monkeypatch) -> None:
    for name in ("SANDBOX_URL", "SANDBOX_TOKEN", "SANDBOX_AGREEMENT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(NotConfigured, match="SANDBOX_URL"):
        Sandbox()
    with pytest.raises(NotConfigured, match="SANDBOX_TOKEN"):
        Sandbox("http://127.0.0.1:1")


def test_catalog(developer) -> None:
    catalog = developer.datasets()
    assert {"residents", "social_insurance", "enterprises", "medical_visits", "district_reference", "pums_null",
            "pums_pid"} <= set(catalog["name"])
    residents = catalog.filter(pl.col("name") == "residents").row(0, named=True)
    assert residents["privacy_unit"] == "person_id" and residents["max_rows"] == 1

    info = developer.describe("residents")
    assert isinstance(info, DatasetInfo) and info.privacy_unit["column"] == "person_id"
    table = {row["column"]: row for row in info.to_polars().iter_rows(named=True)}
    assert table["person_id"]["role"] == "privacy unit"
    assert table["district"]["role"] == "dimension" and table["district"]["keys"].startswith("Siming, Huli")
    assert table["monthly_income"] == table["monthly_income"] | {"role": "measure", "type": "DOUBLE",
                                                                 "bounds": "[0, 200,000]"}
    assert "rows" not in info.raw and "source" not in info.raw  # schemas and policies, never rows or paths
    assert "privacy unit person_id" in repr(info)


def test_unknown_dataset_suggests_the_name(developer) -> None:
    with pytest.raises(DatasetNotFound, match="Did you mean 'residents'"):
        developer.describe("residentz")


def test_explain_is_free_and_predicts_accuracy(developer) -> None:
    before = developer.budget().spent_epsilon
    explanation = developer.explain(SQL, epsilon=0.5)
    assert isinstance(explanation, Explanation)
    assert (explanation.dataset, explanation.epsilon, explanation.group_count) == ("residents", 0.5, 6)
    expected = {row["column"]: row for row in explanation.to_polars().iter_rows(named=True)}
    assert expected["residents"]["expected_half_width"] > 0 and "Laplace" in expected["residents"]["noise"]
    assert expected["district"]["kind"] == "key"
    assert explanation.remaining_epsilon == pytest.approx(90 - before)
    assert developer.budget().spent_epsilon == before
    assert "would cost ε 0.5" in repr(explanation)


def test_query_returns_a_release_with_intervals_and_budget(developer) -> None:
    before = developer.budget()
    release = developer.query(SQL + f" -- {uuid.uuid4()}", epsilon=0.5)  # a comment does not change the plan
    assert isinstance(release, Release) and not release.mock and release.job_id
    assert release.columns == ["district", "residents", "income"]
    assert sorted(row[0] for row in release.rows) == DISTRICTS
    widths = release.half_width("residents")
    assert all(w is not None and math.isfinite(w) and w > 0 for w in widths)
    assert release.half_width("district") == [None] * 6
    if release.reused:  # the normalized SQL matched an earlier test's query
        assert release.charge_epsilon == 0
    else:
        assert release.charge_epsilon == pytest.approx(0.5)
    assert release.remaining_epsilon == pytest.approx(before.remaining_epsilon - release.charge_epsilon)
    assert release.budget_epsilon == pytest.approx(90)

    frame = release.to_polars()
    assert frame.columns == release.columns and frame.height == 6 == len(release)
    wide = release.to_polars(intervals=True)
    assert {"residents_lo", "residents_hi", "income_lo", "income_hi", "suppressed"} <= set(wide.columns)
    assert "district_lo" not in wide.columns
    assert (wide["residents_lo"] < wide["residents"]).all() and (wide["residents"] < wide["residents_hi"]).all()
    assert isinstance(release.to_arrow(), pa.Table) and release.to_arrow().num_rows == 6
    assert isinstance(release.to_pandas(), pd.DataFrame) and list(release.to_pandas().columns) == release.columns
    assert "budget left ε" in repr(release) and ("±" in repr(release) or " [" in repr(release))


def test_the_same_query_again_is_reused_at_no_cost(developer) -> None:
    sql = f"SELECT sex, COUNT(*) AS people FROM residents WHERE age >= {uuid.uuid4().int % 50} GROUP BY sex"
    first = developer.query(sql, epsilon=0.25)
    again = developer.query(sql, epsilon=0.25)
    assert (first.reused, again.reused) == (False, True)
    assert again.charge_epsilon == 0 and again.rows == first.rows
    assert again.remaining_epsilon == pytest.approx(first.remaining_epsilon)
    assert "reused" in again.footer()


other_history_columns = {"developer_name", "organisation", "decided_at"}


def test_agreement_lifecycle(live, operator) -> None:
    developer = Sandbox(live.url, live.tokens["developer"])
    request = developer.request_agreement(
        purpose="lifecycle", legal_basis="tests", datasets={"residents": ["district", "age"]},
        valid_from="2020-01-01", valid_to="2099-01-01", epsilon=3.0)
    assert isinstance(request, Agreement) and request.status == "requested"
    assert request.id in set(developer.agreements(status="requested")["id"])
    assert request.id in set(operator.agreements()["id"])

    live.approve_parts(request.id)  # the demo's data stewards, then the operator
    approved = operator.approve(request.id, epsilon=1.5, per_query_epsilon=0.5, min_count=5, round_to=10,
                                reason="half the budget")
    assert (approved.status, approved.budget_epsilon, approved.per_query_epsilon) == ("active", 1.5, 0.5)
    budget = developer.budget(request.id)
    assert budget.remaining_epsilon == 1.5 and budget.spent_epsilon == 0 and "1.5" in repr(budget)

    release = developer.query("SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
                              epsilon=0.5, agreement=request.id)
    assert all(row[1] % 10 == 0 for row in release.rows if row[1] is not None)  # the agreement rounds to 10
    assert developer.agreement(request.id).spent_epsilon == pytest.approx(0.5)

    amended = operator.amend(request.id, epsilon_add=0.5, valid_to="2099-06-30", datasets=["residents"],
                             reason="more for the second phase")
    assert (amended.budget_epsilon, amended.valid_to, amended.datasets) == (2.0, "2099-06-30",
                                                                           {"residents": ["age", "district"]})
    assert developer.budget(request.id).remaining_epsilon == pytest.approx(1.5)
    assert amended.decision_reason == "more for the second phase"
    with pytest.raises(InvalidParameter, match="Column.s. sex of 'residents' were not requested"):
        operator.amend(request.id, datasets={"residents": ["district", "sex"]}, reason="wider")
    history = operator.agreements(search="lifecycle", decided=True)
    assert request.id in set(history["id"]) and other_history_columns <= set(history.columns)
    assert set(operator.agreements(["active"], search="lifecycle")["status"]) == {"active"}

    assert operator.revoke(request.id, reason="done").status == "revoked"
    with pytest.raises(AgreementInactive, match="revoked"):
        developer.query("SELECT COUNT(*) FROM residents", epsilon=0.1, agreement=request.id)

    other = developer.request_agreement(purpose="x", legal_basis="y", datasets=["residents"],
                                       valid_from="2020-01-01", valid_to="2099-01-01", epsilon=1.0)
    rejected = operator.reject(other.id, reason="purpose too vague")
    assert (rejected.status, rejected.decision_reason) == ("rejected", "purpose too vague")


def test_licensing_and_the_default_agreement(live, operator) -> None:
    licence = operator.license_developer(name="Test developer", organisation="Test lab",
                                         licence_number=f"T-{uuid.uuid4().hex[:8]}", valid_from="2020-01-01",
                                         valid_to="2099-01-01")
    assert licence["licence"]["id"] in set(operator.licences()["id"])
    newcomer = Sandbox(live.url, licence["token"], progress=False)
    with pytest.raises(NotConfigured, match="no active agreement"):
        newcomer.query("SELECT COUNT(*) FROM residents", epsilon=0.1)

    request = newcomer.request_agreement(purpose="p", legal_basis="b", datasets=["residents"],
                                         valid_from="2020-01-01", valid_to="2099-01-01", epsilon=1.0)
    live.approve_parts(request.id)
    operator.approve(request.id)
    release = newcomer.query("SELECT COUNT(*) AS n FROM residents", epsilon=0.2)  # the only active agreement
    assert release.agreement_id == request.id and newcomer.budget().id == request.id

    second = newcomer.request_agreement(purpose="p2", legal_basis="b", datasets=["residents"],
                                        valid_from="2020-01-01", valid_to="2099-01-01", epsilon=1.0)
    live.approve_parts(second.id)
    operator.approve(second.id)
    with pytest.raises(NotConfigured, match="2 active agreements"):
        newcomer.budget()

    suspended = operator.suspend_licence(licence["licence"]["id"], reason="end of project")
    assert suspended["status"] == "suspended"
    with pytest.raises(Forbidden, match=r"suspended \(the operator's reason: end of project\)"):
        newcomer.query("SELECT COUNT(*) AS n FROM residents", epsilon=0.2, agreement=second.id)
    reinstated = operator.reinstate_licence(licence["licence"]["id"], reason="project extended")
    assert (reinstated["status"], reinstated["status_reason"]) == ("active", "project extended")
    assert newcomer.query("SELECT COUNT(*) AS n FROM residents", epsilon=0.2, agreement=second.id).rows


def test_jobs_job_and_cancel_of_a_finished_job(developer) -> None:
    release = developer.query(f"SELECT COUNT(*) AS n FROM residents WHERE age > {uuid.uuid4().int % 90}",
                              epsilon=0.1)
    jobs = developer.jobs(agreement=release.agreement_id)
    assert release.job_id in set(jobs["id"])
    assert developer.job(release.job_id)["status"] == "released"
    assert developer.release(release.job_id).rows == release.rows  # an earlier job's release, again
    assert developer.cancel(release.job_id)["status"] == "released"  # too late: nothing changes


def test_role_is_checked_by_the_server(operator) -> None:
    with pytest.raises(Forbidden, match="developer"):
        operator.query("SELECT COUNT(*) FROM residents", epsilon=0.1, agreement="x")


def test_auditor_reads_verifies_and_exports(developer, auditor) -> None:
    release = developer.query(f"SELECT COUNT(*) AS n FROM residents WHERE age < {uuid.uuid4().int % 90 + 5}",
                              epsilon=0.1)
    events = auditor.audit(job=release.job_id)
    assert set(events["action"]) == {"job.submitted", "job.released"}
    assert events.schema["ts"] == pl.Datetime("us", "UTC")
    released = events.filter(pl.col("action") == "job.released").row(0, named=True)
    assert released["charge_epsilon"] == pytest.approx(0.1) and json.loads(released["details"])["result_hash"]
    assert auditor.audit(action="job.submitted", job=release.job_id)["sql"][0].startswith("SELECT COUNT(*)")
    assert auditor.audit(limit=3).height == 3
    assert release.job_id in set(auditor.jobs()["id"])

    verification = auditor.verify()
    assert isinstance(verification, Verification) and verification and verification.events > 3
    lines = auditor.export("jsonl", job=release.job_id).decode().splitlines()
    assert {json.loads(line)["action"] for line in lines} == {"job.submitted", "job.released"}
    csv = pl.read_csv(io.BytesIO(auditor.export("csv")))
    assert csv.height >= verification.events
    assert auditor.verify().events > verification.events  # exports are audited too


def test_admin_creates_staff(live) -> None:
    admin = Sandbox(live.url, live.tokens["admin"])
    created = admin.create_user(f"auditor {uuid.uuid4().hex[:6]}", "auditor")
    assert Sandbox(live.url, created["token"]).me()["role"] == "auditor"
