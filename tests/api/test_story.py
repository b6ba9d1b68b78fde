"""The whole story through a real server on a loopback socket, as the people involved live it.

Staff accounts come from the CLI on the server machine; everything else is HTTP. An operator
licenses a developer, the developer asks for an agreement, the operator grants less than asked
with a per-query cap, the developer queries until the budget is gone, and an auditor finds
every step in the log, verifies the chain and exports it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.api.conftest import COUNT_BY_DISTRICT, bearer
from tests.support.server import Server, running_server

SANDBOX = Path(sys.executable).parent / "sandbox"  # the installed console script
AVERAGE_INCOME = "SELECT AVG(monthly_income) FROM residents"
COUNT_BY_SEX = "SELECT sex, COUNT(*) FROM residents GROUP BY sex"
HOUSEHOLDS = "SELECT household_size, COUNT(*) FROM residents GROUP BY household_size"


def cli_user(name: str, role: str, data_dir: Path, database_url: str) -> str:
    """`sandbox users add` on the server machine; returns the token it shows once."""
    done = subprocess.run(
        [str(SANDBOX), "users", "add", name, "--role", role, "--data-dir", str(data_dir),
         "--database-url", database_url],
        capture_output=True, text=True, timeout=60, env=os.environ | {"COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"token \(shown once\):\s*(sbx_[\w-]+)", done.stdout)
    assert match, done.stdout
    return match.group(1)


@dataclass
class Story:
    server: Server
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    steps: dict[str, httpx.Response] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def act(self, step: str, who: str, method: str, url: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        response = self.clients[who].request(method, url, **kwargs)
        assert response.status_code == expect, f"{step}: {response.status_code} {response.text}"
        self.steps[step] = response
        return response.json()

    def query(self, step: str, sql: str, epsilon: float, expect: int = 201) -> dict[str, Any]:
        return self.act(step, "developer", "POST", "/jobs", expect, json={
            "sql": sql, "epsilon": epsilon, "agreement_id": self.ids["agreement"], "wait": 30})


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def story(request: pytest.FixtureRequest, demo_catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """The story, told once per metadata store: a SQLite file, and a new PostgreSQL database."""
    data_dir = demo_catalog.data_dir
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('story') / 'sandbox.db'}"
    else:
        database_url = request.getfixturevalue("postgres_server").create_database(f"story_{uuid.uuid4().hex[:8]}")
    tokens = {role: cli_user(f"{role.title()} of the sandbox", role, data_dir, database_url)
              for role in ("operator", "auditor")}
    with running_server(data_dir, database_url) as server:
        s = Story(server)
        for role, token in tokens.items():
            s.clients[role] = httpx.Client(base_url=server.url, headers=bearer(token), timeout=60)
        try:
            _tell(s)
            yield s
        finally:
            for client in s.clients.values():
                client.close()


def _tell(s: Story) -> None:
    s.ids["operator"] = s.act("operator signs in", "operator", "GET", "/me", 200)["id"]
    s.ids["auditor"] = s.act("auditor signs in", "auditor", "GET", "/me", 200)["id"]
    licensed = s.act("operator licenses a developer", "operator", "POST", "/licences", 201, json={
        "name": "Dr. Lin Wei", "organisation": "Xiamen University", "licence_number": "XM-DEV-2026-001",
        "valid_from": "2026-01-01", "valid_to": "2100-01-01"})
    s.ids["developer"] = licensed["developer"]["id"]
    s.clients["developer"] = httpx.Client(base_url=s.server.url, headers=bearer(licensed["token"]), timeout=60)
    s.act("developer reads the catalog", "developer", "GET", "/datasets/residents", 200)
    requested = s.act("developer requests an agreement", "developer", "POST", "/agreements", 201, json={
        "purpose": "Income and household structure across districts", "legal_basis": "Public-interest research",
        "datasets": {"residents": None}, "valid_from": "2026-01-01", "valid_to": "2100-01-01", "epsilon": 3.0})
    s.ids["agreement"] = requested["id"]
    s.query("developer queries too early", COUNT_BY_DISTRICT, 0.3, expect=403)
    s.act("operator lists requests", "operator", "GET", "/agreements", 200, params={"status": "requested"})
    s.act("operator approves with less", "operator", "POST", f"/agreements/{s.ids['agreement']}/approve", 200,
          json={"epsilon": 1.0, "per_query_epsilon": 0.3, "reason": "a third of the request; 0.3 per query"})
    s.query("developer asks above the cap", COUNT_BY_DISTRICT, 0.5, expect=403)
    s.query("first query", COUNT_BY_DISTRICT, 0.3)
    s.query("second query", AVERAGE_INCOME, 0.3)
    s.query("third query", COUNT_BY_SEX, 0.3)
    s.query("budget is exhausted", HOUSEHOLDS, 0.3, expect=403)
    s.query("an earlier release is reused", COUNT_BY_DISTRICT, 0.3)
    s.query("the rest is spent", HOUSEHOLDS, 0.1)
    s.query("the agreement is used up", HOUSEHOLDS + " ORDER BY household_size", 0.1, expect=403)
    s.act("developer reads the agreement", "developer", "GET", f"/agreements/{s.ids['agreement']}", 200)
    s.act("auditor reads the log", "auditor", "GET", "/audit", 200, params={"limit": 1000})
    s.act("auditor verifies the chain", "auditor", "GET", "/audit/verify", 200)
    for fmt in ("csv", "jsonl", "parquet"):
        s.steps[f"export {fmt}"] = s.clients["auditor"].get("/audit/export", params={"format": fmt})
    s.act("auditor verifies again", "auditor", "GET", "/audit/verify", 200)


def _error(s: Story, step: str) -> dict[str, Any]:
    return s.steps[step].json()["error"]


def test_the_operator_licenses_a_developer(story: Story) -> None:
    licensed = story.steps["operator licenses a developer"].json()
    assert licensed["developer"]["role"] == "developer" and licensed["token"].startswith("sbx_")
    assert licensed["licence"]["status"] == "active" and licensed["licence"]["created_by"] == story.ids["operator"]
    assert story.steps["developer reads the catalog"].json()["privacy_unit"]["column"] == "person_id"


def test_the_operator_grants_less_than_requested(story: Story) -> None:
    too_early = _error(story, "developer queries too early")
    assert too_early["code"] == "agreement_inactive" and "wait for an operator's decision" in too_early["message"]
    pending = story.steps["operator lists requests"].json()
    assert [a["id"] for a in pending] == [story.ids["agreement"]]
    approved = story.steps["operator approves with less"].json()
    assert approved["status"] == "active" and approved["decided_by"] == story.ids["operator"]
    assert (approved["requested_epsilon"], approved["budget_epsilon"], approved["per_query_epsilon"]) == (3.0, 1.0, 0.3)
    assert approved["remaining_epsilon"] == 1.0
    capped = _error(story, "developer asks above the cap")
    assert capped["code"] == "budget_exceeded" and "0.3" in capped["message"]


def test_queries_spend_the_budget_until_a_clear_refusal(story: Story) -> None:
    for step in ("first query", "second query", "third query", "the rest is spent"):
        job = story.steps[step].json()
        assert job["status"] == "released" and job["result"]["rows"], step
        assert job["charge_epsilon"] == job["epsilon"] and not job["reused"], step
    response = story.steps["budget is exhausted"]
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "budget_exhausted" and error["job_id"]
    assert error["remaining_epsilon"] == pytest.approx(0.1)
    assert "epsilon 0.1 " in error["message"]  # what is left
    assert "ask the operator for more budget" in error["message"]  # how to get more
    reused = story.steps["an earlier release is reused"].json()
    assert reused["reused"] and reused["charge_epsilon"] == 0
    assert reused["result"] == story.steps["first query"].json()["result"]
    used_up = _error(story, "the agreement is used up")
    assert story.steps["the agreement is used up"].status_code == 403
    assert used_up["code"] == "budget_exhausted" and used_up["job_id"]
    assert used_up["remaining_epsilon"] == 0 and "spent its whole budget" in used_up["message"]
    assert "ask the operator for more budget" in used_up["message"] and "earlier releases" in used_up["message"]
    agreement = story.steps["developer reads the agreement"].json()
    assert agreement["status"] == "exhausted"
    assert agreement["spent_epsilon"] == pytest.approx(1.0) and agreement["remaining_epsilon"] == pytest.approx(0)


EXPECTED_TRAIL = [
    # (action, outcome, who) — who: a role of the story, or "system"
    ("user.created", "ok", "system"),  # the CLI makes the operator ...
    ("user.created", "ok", "system"),  # ... and the auditor
    ("user.created", "ok", "operator"),  # the developer's account, made by the licence
    ("licence.created", "ok", "operator"),
    ("agreement.requested", "ok", "developer"),
    ("job.rejected", "rejected", "developer"),  # too early: agreement_inactive
    ("agreement.approved", "ok", "operator"),
    ("job.rejected", "rejected", "developer"),  # above the cap: budget_exceeded
    ("job.submitted", "ok", "developer"), ("job.released", "ok", "system"),
    ("job.submitted", "ok", "developer"), ("job.released", "ok", "system"),
    ("job.submitted", "ok", "developer"), ("job.released", "ok", "system"),
    ("job.rejected", "rejected", "developer"),  # budget_exhausted
    ("job.reused", "ok", "developer"),
    ("job.submitted", "ok", "developer"), ("agreement.exhausted", "ok", "system"), ("job.released", "ok", "system"),
    ("job.rejected", "rejected", "developer"),  # the agreement is exhausted
]


def _who(story: Story, event: dict[str, Any]) -> str:
    if event["actor"] is None:
        return "system"
    return {story.ids[k]: k for k in ("operator", "auditor", "developer")}[event["actor"]]


def test_the_auditor_finds_every_step_in_order(story: Story) -> None:
    page = story.steps["auditor reads the log"].json()
    events = list(reversed(page["events"]))  # the API lists newest first
    assert page["total"] == len(events) == len(EXPECTED_TRAIL)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [(e["action"], e["outcome"], _who(story, e)) for e in events] == EXPECTED_TRAIL
    rejected = [e["details"]["code"] for e in events if e["action"] == "job.rejected"]
    assert rejected == ["agreement_inactive", "budget_exceeded", "budget_exhausted", "budget_exhausted"]
    approved = next(e for e in events if e["action"] == "agreement.approved")
    assert approved["details"]["epsilon"] == 1.0 and approved["details"]["requested_epsilon"] == 3.0
    assert approved["details"]["reason"].startswith("a third")
    agreement_events = [e for e in events if e["agreement_id"] == story.ids["agreement"]]
    assert len(agreement_events) == len(events) - 4  # all but the accounts and the licence
    released = [e for e in events if e["action"] == "job.released"]
    assert all(e["dataset"] == "residents" and e["details"]["result_hash"] for e in released)
    assert {e["job_id"] for e in released} == {story.steps[s].json()["id"] for s in (
        "first query", "second query", "third query", "the rest is spent")}


def test_the_audit_chain_verifies(story: Story) -> None:
    first = story.steps["auditor verifies the chain"].json()
    newest = story.steps["auditor reads the log"].json()["events"][0]
    chain = {k: first[k] for k in ("ok", "events", "head_hash", "first_bad_seq", "reason")}
    assert chain == {"ok": True, "events": len(EXPECTED_TRAIL), "head_hash": newest["hash"],
                     "first_bad_seq": None, "reason": None}
    # the service signed the head at start-up and keeps signing it (sandbox/checkpoints.py)
    assert first["checkpoints"] >= 1 and first["signing_key"]
    assert first["unsigned_events"] == len(EXPECTED_TRAIL) - first["last_checkpoint_seq"]
    after = story.steps["auditor verifies again"].json()
    assert after["ok"] and after["events"] == len(EXPECTED_TRAIL) + 3  # the three exports are logged


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_exports_read_back_and_rehash(story: Story) -> None:
    exports = {fmt: story.steps[f"export {fmt}"] for fmt in ("csv", "jsonl", "parquet")}
    assert all(r.status_code == 200 for r in exports.values())
    assert exports["csv"].headers["content-type"].startswith("text/csv")
    assert exports["jsonl"].headers["content-type"] == "application/x-ndjson"
    assert 'filename="audit.parquet"' in exports["parquet"].headers["content-disposition"]

    rows = list(csv.DictReader(io.StringIO(exports["csv"].text)))
    assert [(r["action"], r["outcome"]) for r in rows] == [(a, o) for a, o, _ in EXPECTED_TRAIL]

    lines = [json.loads(line) for line in exports["jsonl"].text.splitlines()]
    assert len(lines) == len(EXPECTED_TRAIL) + 1  # and the CSV export before it
    assert lines[-1]["action"] == "audit.exported" and lines[-1]["details"]["format"] == "csv"
    assert [e["hash"] for e in lines[:-1]] == [r["hash"] for r in rows]
    previous = "0" * 64  # anyone can recompute the chain from an export
    for event in lines:
        body = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
        assert event["prev_hash"] == previous
        assert event["hash"] == hashlib.sha256((previous + _canonical(body)).encode()).hexdigest()
        previous = event["hash"]

    table = pq.read_table(io.BytesIO(exports["parquet"].content))
    assert table.num_rows == len(EXPECTED_TRAIL) + 2
    assert table.column("hash").to_pylist()[: len(lines)] == [e["hash"] for e in lines]


def test_the_server_logged_no_errors(story: Story) -> None:
    log = story.server.log()
    assert "Traceback" not in log and "ERROR" not in log, log
