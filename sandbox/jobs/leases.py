"""Which server process runs a job, and for how long that claim holds.

Several `sandbox serve` processes may share one database. A job belongs to the process that
accepted it (`jobs.owner`: host, pid and a random tag) under a lease (`jobs.lease_until`) that the
process renews every third of `seconds` for the jobs it still has in hand. When a process dies,
its leases run out, and any live process settles those jobs (settle.recovered): running ones
keep their charge (data may have been read), queued ones are refunded. Nothing else touches
another process's jobs: a process starting up does not close jobs other live processes run.

Times are the processes' clocks (ISO text in UTC, compared in the database): processes that
share a database should agree on the time to well within a lease (NTP does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import or_, select, update

from sandbox.jobs.settle import ACTIVE
from sandbox.store import Store, now
from sandbox.store.schema import jobs

__all__ = ["Leases"]

log = logging.getLogger("sandbox.jobs")


class Leases:
    def __init__(self, store: Store, *, seconds: float) -> None:
        self.store, self.seconds = store, seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: set[str] = set()  # jobs this process has in hand (queued in its executor or running)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def until(self) -> str:
        """The lease a job gets when this process takes it."""
        return now(self.seconds)

    def hold(self, job_id: str) -> None:
        with self._lock:
            self._held.add(job_id)

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._held.discard(job_id)

    def renew(self) -> None:
        """Extend the leases of the jobs in hand. A job whose thread is gone is not in hand any
        more, so its lease runs out and it is recovered like a dead process's job."""
        with self._lock:
            held = list(self._held)
        for start in range(0, len(held), 500):
            with self.store.transaction() as conn:
                conn.execute(update(jobs).where(jobs.c.id.in_(held[start:start + 500]), jobs.c.owner == self.owner,
                                                jobs.c.status.in_(ACTIVE)).values(lease_until=self.until()))

    def expired(self) -> list[str]:
        """Open jobs whose lease has run out (or that never had one: before leases existed)."""
        with self.store.read() as conn:
            return list(conn.execute(select(jobs.c.id).where(
                jobs.c.status.in_(ACTIVE), or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now()))).scalars())

    def start(self, sweep: Callable[[], int]) -> None:
        """Renew this process's leases and `sweep` up expired ones every third of a lease."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, args=(sweep,), name="sandbox-leases", daemon=True)
        self._thread.start()

    def _loop(self, sweep: Callable[[], int]) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
                closed = sweep()
                if closed:
                    log.warning("settled %d job(s) whose server process stopped (lease expired)", closed)
            except Exception:  # a busy database must not end the thread
                log.exception("renewing job leases failed; trying again")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
