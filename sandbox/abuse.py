"""Abuse controls: how fast and how much one developer may ask of the sandbox.

- **Rate**: a token bucket per developer (`RateLimiter`), `jobs_per_minute` tokens a minute up to
  `jobs_burst`; each job submission or explain takes one. It lives in the server process, so it
  is per process: behind a balancer with N processes a developer gets up to N times the rate
  (the limit is against accidents and floods, not a security boundary; budgets are that).
- **Concurrency**: at most `max_active_jobs` queued or running jobs per developer, counted in the
  metadata store inside the submission's transaction (`check_active_jobs`), so it holds across
  processes and under concurrent submissions.
- **Size**: SQL stops at 20,000 characters (the compiler and the request schema), and the whole
  HTTP body at `max_body_bytes` (sandbox/api/abuse.py).

Refusals are `TooManyRequests` (HTTP 429 with `Retry-After`). They are not recorded as jobs or
audit events: they happen before anything is compiled or charged, and recording every one would
let a flood fill the log the limits protect.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, select

from sandbox.errors import RateLimited, TooManyJobs
from sandbox.store.schema import jobs, users

__all__ = ["ACTIVE", "RateLimiter", "check_active_jobs"]

ACTIVE = ("queued", "running")  # a job's open states (sandbox/jobs/settle.py)
ACTIVE_RETRY_SECONDS = 5  # a job usually finishes within seconds; the client may also wait on one


class RateLimiter:
    """Token buckets keyed by developer: `per_minute` tokens a minute, at most `burst` saved up.

    >>> clock = [0.0]
    >>> limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: clock[0])
    >>> limiter.take("dev"), limiter.take("dev")
    (None, None)
    >>> limiter.wait_for("dev")  # seconds until the next token
    1.0
    >>> clock[0] = 1.0; limiter.take("dev")
    """

    def __init__(self, per_minute: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0  # tokens per second; 0 means no limit
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def take(self, key: str) -> None:
        """Take one token or raise RateLimited with the seconds until one is there."""
        if self.rate <= 0:
            return None
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > 100_000:  # forget full buckets: they are the default
                    self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self.burst}
                return None
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"Too many requests: at most {self._per_minute():g} job submissions or explains a minute "
            f"(bursts of {self.burst}) per developer. Retry in {seconds} s; an identical query returns its "
            "stored release, so there is no need to repeat it.",
            retry_after=seconds,
            limit_per_minute=self._per_minute(),
            burst=self.burst,
        )

    def wait_for(self, key: str) -> float:
        """Seconds until `key` has a token (0 if it has one now)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            return max(0.0, (1.0 - self._level(key, self._clock())) / self.rate)

    def _per_minute(self) -> float:
        return self.rate * 60.0


def check_active_jobs(conn: Connection, developer_id: str, limit: int) -> None:
    """Inside the submission's transaction: refuse a job beyond `limit` queued or running ones.

    SQLite's write transaction already admits one submitter at a time; on PostgreSQL the
    developer's row is locked first (FOR NO KEY UPDATE: other inserts referencing the developer
    do not wait), so two concurrent submissions cannot both see room for one.
    """
    if limit <= 0:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(select(users.c.id).where(users.c.id == developer_id).with_for_update(key_share=True))
    active = conn.execute(
        select(jobs.c.id)
        .where(jobs.c.developer_id == developer_id, jobs.c.status.in_(ACTIVE))
        .order_by(jobs.c.created_at)
    ).scalars().all()
    if len(active) >= limit:
        raise TooManyJobs(
            f"You have {len(active)} jobs queued or running, the most one developer may have at once. "
            f"Retry in about {ACTIVE_RETRY_SECONDS} s, or when one of them has finished "
            "(GET /jobs/{id}?wait=30 waits for it).",
            retry_after=ACTIVE_RETRY_SECONDS,
            limit=limit,
            active_jobs=list(active),
        )
