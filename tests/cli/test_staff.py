"""The operator's and the auditor's story with the `sandbox` command, end to end over HTTP: run
from a directory outside the repository (no data directory, no database at hand) against a real
server. A wrong address or token is one line, never a traceback."""

from __future__ import annotations

import csv
import json
import uuid

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from sandbox.client import Sandbox
from tests.cli.support import clean_env, one_line_error, sandbox
from tests.support.live import REPO, LiveSandbox, free_port


@pytest.fixture
def outside(tmp_path):
    assert REPO not in tmp_path.parents
    return tmp_path


def test_license_approve_query_revoke_then_audit_filter_verify_export(live: LiveSandbox, outside) -> None:
    operator = ["--url", live.url, "--token", live.tokens["operator"]]
    auditor = clean_env(SANDBOX_URL=live.url, SANDBOX_TOKEN=live.tokens["auditor"])  # the environment works too

    # An operator licenses a developer: the token is printed once.
    number = f"XM-CLI-{uuid.uuid4().hex[:8]}"
    done = sandbox("licences", "add", "--name", "Chen Jing", "--organisation", "Xiamen Data Lab", "--licence-number",
                   number, "--valid-from", "2026-01-01", "--valid-to", "2030-01-01", "--json", *operator, cwd=outside)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    developer_token, licence_id = created["token"], created["licence"]["id"]
    assert created["licence"]["licence_number"] == number and developer_token.startswith("sbx_")
    listed = sandbox("licences", "list", *operator, cwd=outside)
    assert licence_id in listed.stdout and "Xiamen Data Lab" in listed.stdout

    # The developer asks for an agreement (from a notebook); the operator finds it and approves less.
    request = Sandbox(live.url, developer_token).request_agreement(
        purpose="CLI story", legal_basis="tests", datasets=["residents"], valid_from="2026-01-01",
        valid_to="2030-01-01", epsilon=2.0)
    waiting = sandbox("agreements", "list", "--status", "requested", *operator, cwd=outside)
    assert waiting.returncode == 0 and request.id in waiting.stdout and "CLI story" in waiting.stdout
    steward = ["--url", live.url, "--token", live.tokens["stewards"]["residents"]]
    queue = sandbox("stewardship", "parts", "--status", "pending", *steward, cwd=outside)
    assert queue.returncode == 0 and request.id in queue.stdout, queue.stderr
    part = sandbox("stewardship", "approve", request.id, "residents", "--epsilon", "1.5", "--min-count", "20",
                   "--reason", "fine", "--json", *steward, cwd=outside)
    assert part.returncode == 0 and json.loads(part.stdout)["status"] == "approved", part.stderr
    assert json.loads(part.stdout)["min_count"] == 20
    approved = sandbox("agreements", "approve", request.id, "--epsilon", "1", "--per-query-epsilon", "0.5",
                       "--reason", "half of it", *operator, cwd=outside)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"agreement {request.id} is active (ε 1 granted, 1 left)"

    # The developer queries with the same command; the release is printed with its intervals.
    developer = ["--url", live.url, "--token", developer_token, "--agreement", request.id]
    released = sandbox("query", "SELECT sex, COUNT(*) AS people FROM residents GROUP BY sex", "--epsilon", "0.5",
                       *developer, cwd=outside)
    assert released.returncode == 0, released.stderr
    assert " ± " in released.stdout or " [" in released.stdout  # ± when symmetric, [lower, upper] when not
    assert "ε 0.5 charged · budget left ε 0.5 of 1" in released.stdout
    shown = sandbox("agreements", "show", request.id, *operator, cwd=outside)
    assert "0.5 of 1 (spent 0.5)" in shown.stdout and "half of it" in shown.stdout

    # Half spent: the operator tops it up and extends it, with a reason; the developer goes on.
    amended = sandbox("agreements", "amend", request.id, "--epsilon-add", "1", "--until", "2031-06-30", "--reason",
                      "second phase", *operator, cwd=outside)
    assert amended.returncode == 0, amended.stderr
    assert amended.stdout.splitlines() == [f"agreement {request.id} is active (ε 2 granted, 1.5 left)",
                                           "valid until 2031-06-30; scope: residents (all queryable columns)"]
    beyond = one_line_error(sandbox("agreements", "amend", request.id, "--dataset", "enterprises", "--reason", "more",
                                    *operator, cwd=outside))
    assert "Dataset 'enterprises' was not requested" in beyond and "requests a new agreement" in beyond
    again = sandbox("query", "SELECT district, COUNT(*) AS people FROM residents GROUP BY district", "--epsilon",
                    "0.5", *developer, cwd=outside)
    assert again.returncode == 0 and "budget left ε 1 of 2" in again.stdout, again.stdout + again.stderr
    found = sandbox("agreements", "list", "--search", "xiamen data lab", "--decided", *operator, cwd=outside,
                    env=clean_env(COLUMNS="250"))
    assert request.id in found.stdout and "Chen Jing (Xiamen Data Lab)" in found.stdout, found.stdout
    none = sandbox("agreements", "list", "--search", "xiamen data lab", "--status", "revoked", "--json", *operator,
                   cwd=outside)
    assert json.loads(none.stdout) == []

    # The data steward suspends the use of residents under this agreement: the next query is refused.
    paused = sandbox("stewardship", "suspend", "residents", "--agreement", request.id, "--reason", "registry audit",
                     *steward, cwd=outside)
    assert paused.returncode == 0 and request.id in paused.stdout, paused.stderr
    stopped = one_line_error(sandbox("query", "SELECT COUNT(*) FROM residents", "--epsilon", "0.1", *developer,
                                     cwd=outside))
    assert "agreement_inactive" in stopped and "registry audit" in stopped
    resumed = sandbox("stewardship", "resume", "residents", "--agreement", request.id, "--reason", "audit done",
                      *steward, cwd=outside)
    assert resumed.returncode == 0, resumed.stderr

    # The operator revokes; the developer's next query is refused in one line.
    revoked = sandbox("agreements", "revoke", request.id, "--reason", "study finished", *operator, cwd=outside)
    assert revoked.returncode == 0 and f"agreement {request.id} is revoked" in revoked.stdout
    refused = one_line_error(sandbox("query", "SELECT COUNT(*) FROM residents", "--epsilon", "0.1", *developer,
                                     cwd=outside))
    assert "agreement_inactive" in refused and "revoked" in refused
    suspended = sandbox("licences", "suspend", licence_id, "--reason", "CLI story over", *operator, cwd=outside)
    assert suspended.returncode == 0 and f"licence {number} ({licence_id}) is suspended" in suspended.stdout
    told = one_line_error(sandbox("query", "SELECT COUNT(*) FROM residents", "--epsilon", "0.1", *developer,
                                  cwd=outside))
    assert "suspended (the operator's reason: CLI story over)" in told
    reinstated = sandbox("licences", "reinstate", licence_id, "--reason", "a new study is coming", *operator,
                         cwd=outside)
    assert reinstated.returncode == 0 and f"licence {number} ({licence_id}) is active" in reinstated.stdout

    # The auditor filters the log to this agreement's revocation, verifies the chain, exports.
    events = sandbox("audit", "list", "--agreement", request.id, "--action", "agreement.revoked", "--json",
                     cwd=outside, env=auditor)
    page = json.loads(events.stdout)
    assert page["total"] == 1 and page["events"][0]["details"]["reason"] == "study finished"
    table = sandbox("audit", "list", "--agreement", request.id, cwd=outside, env=auditor)
    for action in ("agreement.requested", "agreement.approved", "job.released", "agreement.amended",
                   "agreement.revoked"):
        assert action in table.stdout
    # requested, approved, then per query: explained (the client's check for private keys), submitted,
    # released; amended between the two; the steward's approval, suspension, a refusal and resumption;
    # revoked, and two refusals (revoked, then suspended)
    assert "16 of 16 events" in table.stdout

    verified = sandbox("audit", "verify", cwd=outside, env=auditor)
    assert verified.returncode == 0 and "audit chain verified" in verified.stdout, verified.stderr
    kept = outside / "checkpoints.json"
    assert sandbox("audit", "checkpoints", str(kept), cwd=outside, env=auditor).returncode == 0
    assert json.loads(kept.read_text())["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    again = sandbox("audit", "verify", "--checkpoints", str(kept), cwd=outside, env=auditor)
    assert again.returncode == 0 and "checkpoints you kept are signed into this log" in again.stdout, again.stdout

    exported = sandbox("audit", "export", "story.csv", "--format", "csv", "--agreement", request.id,
                       cwd=outside, env=auditor)
    assert exported.returncode == 0 and "wrote story.csv" in exported.stdout, exported.stderr
    with (outside / "story.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["action"] for r in rows] == ["agreement.requested", "dataset.approved", "agreement.approved",
                                           "job.explained", "job.submitted", "job.released", "agreement.amended",
                                           "job.explained", "job.submitted", "job.released", "dataset.suspended",
                                           "job.rejected", "dataset.resumed", "agreement.revoked", "job.rejected",
                                           "job.rejected"]
    assert rows[1]["dataset"] == "residents" and json.loads(rows[1]["details"])["epsilon"] == 1.5
    amendment = json.loads(rows[6]["details"])
    assert amendment["reason"] == "second phase" and amendment["changes"]["budget_epsilon"] == [1, 2]
    assert sandbox("audit", "list", "--action", "audit.exported", "--json", cwd=outside,
                   env=auditor).stdout.count('"audit.exported"') >= 1  # the export is audited


def test_a_tampered_checkpoint_file_is_caught(live: LiveSandbox, outside) -> None:
    auditor = clean_env(SANDBOX_URL=live.url, SANDBOX_TOKEN=live.tokens["auditor"])
    kept = outside / "checkpoints.json"
    assert sandbox("audit", "checkpoints", str(kept), cwd=outside, env=auditor).returncode == 0
    document = json.loads(kept.read_text())
    assert document["checkpoints"], "the server signs its head at start-up"
    document["checkpoints"][0]["hash"] = "0" * 64
    kept.write_text(json.dumps(document))
    done = sandbox("audit", "verify", "--checkpoints", str(kept), cwd=outside, env=auditor)
    assert done.returncode == 1 and "checkpoints you kept do not check out" in done.stdout


@pytest.mark.parametrize("case", ["unreachable", "not the sandbox", "wrong token", "no token", "wrong role"])
def test_a_wrong_url_or_token_is_one_line(live: LiveSandbox, outside, case: str) -> None:
    url, token = live.url, live.tokens["operator"]
    if case == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
    elif case == "not the sandbox":
        url = live.url + "/docs"
    elif case == "wrong token":
        token = "sbx_" + "x" * 43
    elif case == "wrong role":
        token = live.tokens["developer"]
    args = ["licences", "list", "--url", url] + (["--token", token] if case != "no token" else [])
    line = one_line_error(sandbox(*args, cwd=outside))
    expected = {"unreachable": f"Cannot reach the sandbox at {url}", "not the sandbox": "Check --url",
                "wrong token": "refused the token", "no token": "No token: pass --token or set SANDBOX_TOKEN",
                "wrong role": "forbidden"}[case]
    assert expected in line
    if case in ("unreachable", "not the sandbox"):
        assert line.endswith("and that the sandbox is running there.") or "SANDBOX_URL" in line
    if case == "wrong token":
        assert line.endswith("Check --token (or SANDBOX_TOKEN).") and token not in line


def test_every_staff_command_answers_a_dead_server_in_one_line(outside, monkeypatch) -> None:
    """In process (the subprocess tests above prove the console script itself): every command over HTTP."""
    monkeypatch.chdir(outside)
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["agreements", "show", "x"], ["agreements", "approve", "x"], ["agreements", "reject", "x", "--reason",
                 "r"], ["agreements", "amend", "x", "--epsilon-add", "1", "--reason", "r"], ["agreements", "list",
                 "--decided", "--search", "x"], ["licences", "list"], ["licences", "suspend", "x", "--reason", "r"],
                 ["licences", "reinstate", "x", "--reason", "r"], ["users", "list"],
                 ["users", "add", "Audit Office", "--role", "auditor"], ["audit", "list"], ["audit", "verify"],
                 ["audit", "export", "out.jsonl"], ["audit", "checkpoints"], ["catalog", "list"]):
        done = CliRunner().invoke(app, [*args, "--url", url, "--token", "sbx_t"], env=clean_env())
        assert done.exit_code == 1 and done.stdout == "", (args, done.output)
        (line,) = done.stderr.splitlines()
        assert line.startswith("error: Cannot reach the sandbox"), args


def test_server_local_administration_says_so() -> None:
    for args in (["users", "create-admin", "--help"], ["audit", "checkpoint", "--help"], ["serve", "--help"],
                 ["audit", "verify", "--help"], ["users", "list", "--help"]):
        done = CliRunner().invoke(app, args, env=clean_env(COLUMNS="200"))
        assert "On the server machine" in " ".join(done.stdout.split()) or "on the server machine" in done.stdout, args
