"""The tamper-evident audit log: one event per state change or data access, hash-chained,
signed at checkpoints, checked against the server's own journal, verifiable and exportable.

    chain        append an event; walk the chain back, checking each event (the one writer)
    journal      the server's own record of what it appended, outside the database
    checkpoints  Ed25519-signed heads, the witness file, what a verifier trusts
    budgets      every agreement's budget and spending, recomputed from the events
    verify       chain + journal + checkpoints + budgets, in one snapshot
    export       filtered pages, one event, exports (each export is itself an event)

Events are appended in the transaction of the state change they record (ledger.py, jobs.py,
agreements.py, accounts.py), never after it.
"""

from __future__ import annotations

from sandbox.audit import checkpoints
from sandbox.audit.chain import FIELDS, append, canonical, digest
from sandbox.audit.export import FORMATS, AuditFilter, actions, event, export, search
from sandbox.audit.journal import Journal
from sandbox.audit.verify import Verification, verify

__all__ = [
    "FIELDS",
    "FORMATS",
    "AuditFilter",
    "Journal",
    "Verification",
    "actions",
    "append",
    "canonical",
    "checkpoints",
    "digest",
    "event",
    "export",
    "search",
    "verify",
]
