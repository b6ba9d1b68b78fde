"""Per-developer rate limit: a token bucket in each server process (sandbox/abuse.py).

Past the burst, job submissions and explains get 429 `rate_limited` with `Retry-After` and a
message that says when to retry; other developers are not affected; tokens come back at the
configured rate; 0 turns the limit off.
"""

from __future__ import annotations

import pytest

from sandbox import accounts, agreements
from sandbox.abuse import RateLimiter
from sandbox.errors import RateLimited
from sandbox.settings import Settings
from tests.abuse.conftest import bearer
from tests.service.conftest import RESIDENTS, seed

SQL = "SELECT district, COUNT(*) FROM residents GROUP BY district"


def test_a_bucket_refuses_past_its_burst_and_refills_at_its_rate() -> None:
    clock = [100.0]
    limiter = RateLimiter(per_minute=6, burst=3, clock=lambda: clock[0])  # one token every 10 s
    for _ in range(3):
        limiter.take("ana")
    with pytest.raises(RateLimited) as refused:
        limiter.take("ana")
    assert refused.value.status == 429 and refused.value.retry_after == 10
    message = refused.value.message
    assert "Retry in 10 s" in message and "6 job submissions or explains a minute" in message
    limiter.take("bo")  # another developer has a bucket of their own
    clock[0] += 4.0
    with pytest.raises(RateLimited) as refused:
        limiter.take("ana")
    assert refused.value.retry_after == 6, "a refusal takes no token and says how long is left"
    clock[0] += 6.0
    limiter.take("ana")
    clock[0] += 3600
    for _ in range(3):  # a long pause refills to the burst, not beyond
        limiter.take("ana")
    with pytest.raises(RateLimited):
        limiter.take("ana")


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(per_minute=0, burst=1)
    for _ in range(1000):
        limiter.take("ana")


def test_the_defaults_allow_a_burst_of_200() -> None:
    """The service tests fire 200 submissions at once; the defaults must let them through."""
    settings = Settings()
    assert settings.jobs_burst >= 200 and settings.jobs_per_minute == 120 and settings.max_active_jobs >= 12


def test_http_429_with_retry_after(store, app_client) -> None:
    world = seed(store)
    with store.transaction() as conn:
        _, other, other_token = accounts.create_licence(
            conn, world.operator, name="Other", organisation="Xiamen University", licence_number="XM-TEST-0002",
            valid_from="2020-01-01", valid_to="2100-01-01")
        other_agreement = agreements.request(
            conn, other, purpose="tests", legal_basis="tests", datasets={"residents": None},
            valid_from="2020-01-01", valid_to="2100-01-01", epsilon=1.0, delta=0.0, known=RESIDENTS)
        agreements.approve(conn, world.operator, other_agreement["id"])
    body = {"sql": SQL, "epsilon": 0.1, "agreement_id": world.agreement_id}
    with app_client(jobs_per_minute=2, jobs_burst=3) as (_, client):
        developer = bearer(world.tokens["developer"])
        assert client.post("/explain", json=body, headers=developer).status_code == 200
        assert client.post("/jobs", json=body | {"wait": 30}, headers=developer).status_code == 201
        assert client.post("/jobs", json=body, headers=developer).status_code == 201  # reused: still a request
        refused = client.post("/jobs", json=body, headers=developer)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "30"
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["retry_after"] == 30
        assert error["message"].startswith("Too many requests") and "Retry in 30 s" in error["message"]
        assert client.post("/explain", json=body, headers=developer).status_code == 429
        other_body = body | {"agreement_id": other_agreement["id"]}
        assert client.post("/explain", json=other_body, headers=bearer(other_token)).status_code == 200
        # reading is not limited
        assert client.get("/jobs", headers=developer).status_code == 200
        auditor = bearer(world.tokens["auditor"])
        events = client.get("/audit", params={"action": "job.rejected"}, headers=auditor).json()["events"]
        assert events == [], "a rate-limited request is not a job and is not logged"
