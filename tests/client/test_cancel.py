"""Long jobs: a progress indicator, and Ctrl-C cancels the job on the server.

A KeyboardInterrupt is simulated where Ctrl-C would land — while waiting for the job (raised
from the progress callback) and while the submission itself is in flight (raised by the
transport after the server has the job) — and the server is then asked for the job's status.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from sandbox.client import JobCancelled, Sandbox

# 101 ages x 6 districts, one exponential mechanism each: about a second of engine time, while
# a cancel reaches the server within milliseconds of the interrupt.
SLOW = "SELECT age, district, MEDIAN(monthly_income) AS median FROM residents GROUP BY age, district"


def _slow(tag: str) -> str:
    return f"{SLOW} -- {tag} {uuid.uuid4()}"  # a fresh job every time (identical SQL would be reused)


def _interrupt(job: dict) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_while_waiting_cancels_the_job_on_the_server(developer, auditor) -> None:
    seen: list[str] = []

    def progress(job: dict) -> None:
        seen.append(job["status"])
        _interrupt(job)

    with pytest.raises(JobCancelled) as caught:
        developer.query(_slow("wait"), epsilon=0.1, progress=progress, poll=0.1)
    job_id = caught.value.fields["job_id"]
    assert seen and seen[0] in ("queued", "running")
    assert developer.job(job_id)["status"] == "cancelled"
    assert f"Job {job_id} cancelled on the server" in str(caught.value)
    # The engine finishes its work on the side; the job stays cancelled and releases nothing.
    final = developer._call("GET", f"/jobs/{job_id}", params={"wait": 10})
    assert (final["status"], final["result"]) == ("cancelled", None)
    assert "job.cancelled" in set(auditor.audit(job=job_id)["action"])


class _InterruptAfterSubmit(httpx.HTTPTransport):
    """Forwards to the server, then raises KeyboardInterrupt instead of returning the first
    POST /jobs answer: Ctrl-C after the server has the job but before the client knows its id."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path == "/jobs":
            self.posts.append(request.headers.get("Idempotency-Key"))
            if len(self.posts) == 1:
                response.read()
                response.close()
                raise KeyboardInterrupt
        return response


def test_ctrl_c_during_submission_finds_and_cancels_the_job(live, agreement_id) -> None:
    transport = _InterruptAfterSubmit()
    developer = Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, transport=transport)
    sql = _slow("submit")
    with pytest.raises(JobCancelled) as caught:
        developer.query(sql, epsilon=0.1, poll=0.1)
    assert len(transport.posts) == 2 and transport.posts[0] == transport.posts[1]  # replayed with its key
    job_id = caught.value.fields["job_id"]
    assert developer.job(job_id)["status"] == "cancelled"
    assert developer.jobs()["sql"].to_list().count(sql) == 1  # the replay found the job, made no second one


def test_long_jobs_show_progress(developer, capsys) -> None:
    developer.progress = True
    release = developer.query(_slow("progress"), epsilon=0.1, poll=0.2)
    assert len(release) > 0
    shown = capsys.readouterr().err
    assert f"job {release.job_id[:8]}" in shown and "Ctrl-C cancels" in shown


@pytest.mark.parametrize("answer,message", [
    ({"status": "cancelled", "charge_epsilon": 0.0}, "It had not started, so nothing was charged."),
    ({"status": "cancelled", "charge_epsilon": 0.1}, "It had started, so its charge of ε 0.1 is kept."),
    ({"status": "released", "charge_epsilon": 0.1}, "had already finished (released); sb.release('j1') returns it"),
])
def test_what_an_interrupt_reports(answer: dict, message: str) -> None:
    calls: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        job = {"id": "j1", "status": "queued", "agreement_id": "a", "charge_epsilon": 0.1}
        return httpx.Response(201 if request.method == "POST" else 200,
                              json=job | answer if request.url.path.endswith("/cancel") else job)

    sb = Sandbox("http://sandbox.test", "t", agreement="a", transport=httpx.MockTransport(server))
    with pytest.raises(JobCancelled) as caught:
        sb.query("SELECT COUNT(*) FROM residents", epsilon=0.1, progress=_interrupt)
    assert message in str(caught.value) and calls == ["POST /jobs", "POST /jobs/j1/cancel"]
