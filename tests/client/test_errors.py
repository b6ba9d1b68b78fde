"""Errors in the notebook: short, positioned, and ending with what to do (or what to check)."""

from __future__ import annotations

import pickle

import httpx
import pytest

import sandbox.errors
from sandbox.client import Sandbox, SandboxUnreachable
from sandbox.errors import BudgetExceeded, QueryFailed, SandboxError, SQLRejected, Unauthorized
from tests.support.live import free_port

REJECTED = "SELECT district,\n       monthly_income\nFROM residents"


def test_a_rejected_query_says_what_where_why_and_what_instead(developer) -> None:
    with pytest.raises(SQLRejected) as caught:
        developer.query(REJECTED, epsilon=0.1)
    err = caught.value
    assert isinstance(err, sandbox.errors.SQLRejected) and err.code == "sql_rejected" and err.status == 400
    text = str(err)
    assert "line 1, column 8" in text  # the position ...
    assert "it would output rows" in text  # ... why ...
    assert err.fields["fix"] in text and text.index(err.fields["fix"]) > text.index("line 1")  # ... and the fix
    assert "    SELECT district,\n           ^" in text  # the user's own line with a caret under the position
    assert err.fields["job_id"]  # the refusal is recorded (and costs nothing)

    again = pickle.loads(pickle.dumps(err))  # e.g. across multiprocessing in a notebook
    assert type(again) is type(err) and again.fields == err.fields and str(again) == text

    rendered = err._render_traceback_()  # what IPython shows instead of a traceback
    assert rendered[0].startswith("\x1b[1;31mSQLRejected\x1b[0m: ") and rendered[-1].strip() == "^"
    assert not any("Traceback" in line or ".py" in line for line in rendered)


def test_a_rejected_query_with_the_position_on_a_later_line(developer) -> None:
    with pytest.raises(SQLRejected) as caught:
        developer.query("SELECT district, COUNT(*)\nFROM residents\nGROUP BY person_id", epsilon=0.1)
    assert "line 3" in str(caught.value) and "person_id" in str(caught.value).splitlines()[-2]


def test_budget_errors_name_the_limit(developer) -> None:
    with pytest.raises(BudgetExceeded) as caught:
        developer.query("SELECT COUNT(*) FROM residents", epsilon=2.0)
    assert "1" in str(caught.value) and caught.value.status == 403


def test_invalid_request_keeps_the_servers_code(developer) -> None:
    with pytest.raises(SandboxError) as caught:
        developer.explain("SELECT COUNT(*) FROM residents", epsilon=-1)
    assert caught.value.code == "invalid_request" and "epsilon" in str(caught.value)


def test_unreachable_server_says_what_to_check() -> None:
    sb = Sandbox(f"http://127.0.0.1:{free_port()}", "any-token")
    with pytest.raises(SandboxUnreachable) as caught:
        sb.datasets()
    message = str(caught.value)
    assert "Cannot reach the sandbox at http://127.0.0.1:" in message
    assert "running" in message and "SANDBOX_URL" in message
    assert caught.value.__suppress_context__  # no httpx traceback chained under it


def test_a_timeout_says_what_to_check() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(SandboxUnreachable, match="did not answer GET /datasets in time. Check your network"):
        Sandbox("http://sandbox.test", "t", transport=httpx.MockTransport(slow)).datasets()


def test_a_bad_token_says_which_token(live, monkeypatch) -> None:
    with pytest.raises(Unauthorized, match="passed to Sandbox"):
        Sandbox(live.url, "not-a-token").datasets()
    monkeypatch.setenv("SANDBOX_TOKEN", "still-not-a-token")
    with pytest.raises(Unauthorized, match=r"Unknown or disabled token.*SANDBOX_TOKEN"):
        Sandbox(live.url).me()


def test_something_else_at_the_url() -> None:
    proxy = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(SandboxError, match="HTTP 502.*SANDBOX_URL"):
        Sandbox("http://sandbox.test", "t", transport=proxy).me()


def test_a_failed_job_is_the_servers_generic_error() -> None:
    job = {"id": "j1", "status": "failed", "agreement_id": "a", "error": {
        "code": "query_timeout", "message": "The query ran out of time.", "data_touched": True}}

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json=job)

    with pytest.raises(QueryFailed) as caught:
        Sandbox("http://sandbox.test", "t", agreement="a", transport=httpx.MockTransport(server)).query(
            "SELECT COUNT(*) FROM residents", epsilon=0.1)
    assert caught.value.code == "query_timeout" and caught.value.fields == {"data_touched": True, "job_id": "j1"}
