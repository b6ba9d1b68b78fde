"""The hash chain: how an event is appended, hashed and walked.

    hash_n = sha256(hash_{n-1} + canonical_json(event_n)),   hash_0 = 64 zeros

Events are appended in the transaction of the state change they record; the chain head (one
row, locked for the append) makes one writer at a time. Each append is also recorded in the
server's own journal, outside the database, before the transaction commits (journal.py): a
committed event is always in the journal, so a rewritten one can be told from it.

`walk` is the one place that reads the chain back and checks each event against the one before
it; `verify` (verify.py) and the checkpointer (checkpoints.py) both use it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, insert, select, update

from sandbox.store import JOURNAL, now
from sandbox.store.migrations import GENESIS
from sandbox.store.schema import audit, audit_head

__all__ = [
    "FIELDS", "GENESIS", "Actor", "ChainBroken", "Link", "append", "canonical", "digest", "event_of", "head", "walk",
]

FIELDS = ("seq", "ts", "actor", "role", "action", "outcome", "agreement_id", "dataset", "job_id", "details")


class Actor(Protocol):
    """Who acted (an account: sandbox.accounts.User)."""

    id: str
    role: str


def canonical(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the bytes that are hashed and signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(event)).encode("utf-8")).hexdigest()


def append(
    conn: Connection,
    *,
    action: str,
    outcome: str = "ok",
    actor: str | None = None,
    role: str | None = None,
    agreement_id: str | None = None,
    dataset: str | None = None,
    job_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one event in `conn`'s transaction (which must be a write transaction)."""
    top = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()).one()
    event = {
        "seq": top.seq + 1,
        "ts": now(),
        "actor": actor,
        "role": role,
        "action": action,
        "outcome": outcome,
        "agreement_id": agreement_id,
        "dataset": dataset,
        "job_id": job_id,
        "details": json.loads(canonical(details or {})),
    }
    hashed = digest(top.hash, event)
    conn.execute(
        insert(audit).values(**(event | {"details": canonical(event["details"])}), prev_hash=top.hash, hash=hashed)
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=event["seq"], hash=hashed))
    journal = conn.info.get(JOURNAL)
    if journal is not None:
        journal.record(event["seq"], hashed)  # before the commit: a committed event is always recorded
    return event | {"hash": hashed, "prev_hash": top.hash}


def head(conn: Connection) -> Any:
    """The head as recorded with every append: (seq, hash)."""
    return conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()


def event_of(row: Any) -> dict[str, Any]:
    """A stored row as the event that was hashed (details parsed back)."""
    values = {name: getattr(row, name) for name in FIELDS}
    values["details"] = json.loads(values["details"])
    return values


class Link(NamedTuple):
    seq: int
    hash: str
    event: dict[str, Any]


class ChainBroken(Exception):
    """The first event that does not check out, why, and the last one that did."""

    def __init__(self, seq: int, reason: str, good: tuple[int, str]) -> None:
        super().__init__(f"event {seq}: {reason}")
        self.seq, self.reason, self.good = seq, reason, good


def walk(conn: Connection, after: tuple[int, str] = (0, GENESIS), until: int | None = None) -> Iterator[Link]:
    """The events after `after` = (seq, hash), in order, each checked against the one before it:
    no gap, its prev_hash is the previous hash, its content hashes to its hash. Raises
    ChainBroken at the first that does not check out (events up to `until`, if given)."""
    expected, prev = after[0] + 1, after[1]
    query = select(audit).where(audit.c.seq > after[0]).order_by(audit.c.seq)
    if until is not None:
        query = query.where(audit.c.seq <= until)
    for row in conn.execute(query.execution_options(yield_per=5000)):
        if row.seq != expected:
            raise ChainBroken(expected, f"event {expected} is missing (next stored is {row.seq})", (expected - 1, prev))
        if row.prev_hash != prev:
            raise ChainBroken(row.seq, "its prev_hash does not match the previous event", (expected - 1, prev))
        event = event_of(row)
        if digest(prev, event) != row.hash:
            raise ChainBroken(row.seq, "its content does not match its hash", (expected - 1, prev))
        yield Link(row.seq, row.hash, event)
        prev, expected = row.hash, expected + 1
    if until is not None and expected <= until:
        raise ChainBroken(expected, f"event {expected} is missing: the chain ends at event {expected - 1}",
                          (expected - 1, prev))
