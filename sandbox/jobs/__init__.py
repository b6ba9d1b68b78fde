"""Jobs: the one path from a developer's SQL to a release.

    submit   agreement in force? -> compile (a refusal is recorded as a rejected job, audited,
             free) -> one transaction: the stored release of an identical query under this
             agreement (reused, free), or [job row owned by this process under a lease, budget
             reservation (compare-and-set), audit event] -> queued
    run      queued -> running -> isolated worker -> settle
    settle   the one way a job ends: [ledger commit or refund, job row, audit event] in one
             transaction, whoever ends it: the worker's release or failure, a cancellation, or
             recovery of a job whose server process died (its lease expired)
    wait     a job this process runs signals its end; any other is read again until it ends

A release is returned only after its charge and audit event are committed, because it is read
back from the committed job row. A job that may have read data keeps its charge.

    service   JobService: the actions above
    settle    how a job ends (Ending) and `settle`, the one writer of a job's end
    leases    which process runs a job, heartbeats, and when another may settle it
"""

from __future__ import annotations

from sandbox.jobs.service import JobService, cache_key, public, rejections
from sandbox.jobs.settle import ACTIVE, FINAL

__all__ = ["ACTIVE", "FINAL", "JobService", "cache_key", "public", "rejections"]
