"""`sandbox query` with contribution bounds, honest intervals and warnings, as a developer runs it
from a terminal against a real server: flags for the bounds (a malformed one is one line), the
choices each bound implies with --explain, what was left out said after the table, and a warning
on stderr before a query whose groups may not appear (which then runs, and says why it has none)."""

from __future__ import annotations

import json

import pytest

from sandbox.client import Sandbox
from tests.cli.support import clean_env, one_line_error, sandbox
from tests.support.live import LiveSandbox

JOIN = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m ON r.person_id = m.person_id "
        "GROUP BY r.district")
RARE = ("SELECT FLOOR(total) AS total, COUNT(*) AS people FROM (SELECT person_id, SUM(cost) AS total "
        "FROM medical_visits GROUP BY person_id) t GROUP BY 1")


@pytest.fixture(scope="module")
def developer(live: LiveSandbox) -> dict[str, str]:
    """The demo developer's environment, with an agreement of its own for these tests."""
    request = Sandbox(live.url, live.tokens["developer"]).request_agreement(
        purpose="CLI query tests", legal_basis="tests", datasets=["residents", "medical_visits"],
        valid_from="2020-01-01", valid_to="2099-01-01", epsilon=20.0)
    live.approve_parts(request.id)  # the demo's data stewards, then the operator
    Sandbox(live.url, live.tokens["operator"]).approve(request.id, epsilon=20.0, per_query_epsilon=1.0)
    return clean_env(SANDBOX_URL=live.url, SANDBOX_TOKEN=live.tokens["developer"], SANDBOX_AGREEMENT=request.id)


def test_bounds_as_flags_and_what_was_left_out_after_the_table(developer, tmp_path) -> None:
    done = sandbox("query", JOIN, "--epsilon", "0.3", "--max-rows", "medical_visits=1", cwd=tmp_path, env=developer)
    assert done.returncode == 0, done.stderr
    assert "Haicang" in done.stdout and " [" in done.stdout  # intervals widened upwards by what was left out
    assert "⚠ about " in done.stdout and "of medical_visits's rows are left out by keeping at most 1 per person_id" \
        in " ".join(done.stdout.split())
    assert "each person_id contributes at most 1 joined rows" in " ".join(done.stdout.split())
    as_json = sandbox("query", JOIN, "--epsilon", "0.3", "--max-rows", "medical_visits=1", "--json", cwd=tmp_path,
                      env=developer)
    shown = json.loads(as_json.stdout)
    assert shown["contribution"] == {"max_rows": {"medical_visits": 1}}
    assert len(shown["lower"]) == len(shown["rows"]) == len(shown["upper"])
    assert any(d["key"] == "rows_left_out.below_ceiling" for d in shown["note_details"])


def test_explain_lists_the_choices(developer, tmp_path) -> None:
    done = sandbox("query", JOIN, "--epsilon", "0.3", "--explain", "--max-rows", "medical_visits=10",
                   "--max-groups", "1", "--clamp", "residents.monthly_income=0,50000", cwd=tmp_path, env=developer)
    assert done.returncode == 0, done.stderr
    assert "Contribution bounds this query could ask for (✓: used now)" in done.stdout
    assert "10 ✓" in done.stdout and "40" in done.stdout and "rows left out (estimated)" in done.stdout


@pytest.mark.parametrize("flags,says", [
    (["--max-rows", "medical_visits:10"], "--max-rows takes DATASET=ROWS"),
    (["--max-groups", "0"], "--max-groups takes a whole number of at least 1"),
    (["--clamp", "residents.monthly_income=50000"], "--clamp takes DATASET.COLUMN=LOW,HIGH"),
    (["--max-rows", "medical_visits=400"], "ceiling 40"),  # well-formed, beyond the ceiling: the server says so
])
def test_a_malformed_bound_is_one_line(developer, tmp_path, flags: list[str], says: str) -> None:
    line = one_line_error(sandbox("query", JOIN, "--epsilon", "0.3", *flags, cwd=tmp_path, env=developer))
    assert says in line


def test_private_keys_warn_on_stderr_first_then_the_query_runs_and_says_why_it_is_empty(developer, tmp_path) -> None:
    done = sandbox("query", RARE, "--epsilon", "0.2", cwd=tmp_path, env=developer)
    assert done.returncode == 0, done.stderr
    (warning,) = done.stderr.splitlines()
    assert warning.startswith("warning: Before this query spends ε 0.2: the group keys are private: a group needs "
                              "about ")
    out = " ".join(done.stdout.split())
    assert "(none)" in out and "no rows released" in out and "ε 0.2 charged" in out
    assert "⚠ no group reached the release threshold for private keys" in out

    chinese = sandbox("--lang", "zh-CN", "query", RARE.replace("FLOOR(total)", "FLOOR(total) + 2"), "--epsilon",
                      "0.2", cwd=tmp_path, env=developer)
    assert chinese.returncode == 0, chinese.stderr
    assert chinese.stderr.startswith("警告: 本查询花费 ε 0.2 之前请注意：分组键是私有的")
    assert "没有分组达到私有键的发布阈值" in "".join(chinese.stdout.split())
