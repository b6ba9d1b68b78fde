"""`verify`: does the audit log in the database still tell what the sandbox wrote?

One pass over the chain (chain.walk), in one snapshot of the database, checks in order:

1. the chain: every event follows from the one before it, and the head recorded with the last
   append is the chain's end (a rewritten, re-hashed or cut chain with the head left alone);
2. the signed checkpoints and the anchors kept outside the database (checkpoints.check);
3. the journal (journal.py): an event the sandbox recorded when it appended it has that hash,
   and none is missing from it (rewritten after the last checkpoint, or never appended by us);
4. the books (budgets.py): every agreement's budget, spent budget and ledger add up to what its
   audit events grant and charge.

The first of these that fails is the answer: the event (or agreement) it implicates and why.
(The checkpoints come before the journal: they implicate the earliest events a rewrite reached.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection

from sandbox.audit import checkpoints
from sandbox.audit.budgets import Books
from sandbox.audit.chain import GENESIS, ChainBroken, Link, head, walk
from sandbox.audit.checkpoints import Trust
from sandbox.store import Store

__all__ = ["Verification", "verify"]

Kind = Literal["chain", "journal", "checkpoints", "budget"]


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0  # signed checkpoints that check out (when the chain does)
    last_checkpoint_seq: int | None = None
    last_checkpoint_ts: str | None = None
    unsigned_events: int = 0  # events after the last good checkpoint: vouched for by the chain only
    signing_key: str | None = None  # key id that signed the good checkpoints; None if none or unchecked
    kind: Kind | None = None  # what failed
    agreement_id: str | None = None  # the agreement whose books do not add up
    agreements: int = 0  # agreements whose books were checked


class _Found(Exception):
    def __init__(self, verification: Verification) -> None:
        self.verification = verification


def verify(db: Store | Connection, trust: Trust | None = None) -> Verification:
    """Walk the whole chain in order and stop at the first problem (see the module docstring).
    Without a `trust`, signatures and the journal are not checked; hashes and links are."""
    if isinstance(db, Store):
        with db.snapshot() as conn:
            return verify(conn, trust)
    if db.dialect.name == "postgresql" and not db.in_transaction():
        db.execution_options(isolation_level="REPEATABLE READ")  # one snapshot for every table
    try:
        return _verify(db, trust)
    except _Found as found:
        return found.verification


def _verify(conn: Connection, trust: Trust | None) -> Verification:
    start = head(conn)
    signed = checkpoints.stored(conn)
    written = trust.journal.read() if trust and trust.journal else {}  # after the snapshot began
    wanted = {c["seq"] for c in signed} | {a["seq"] for a in (trust.anchors if trust else ())}
    walker = _Walker(start, written, wanted)
    try:
        for link in walk(conn):
            walker.step(link)
    except ChainBroken as broken:
        raise _Found(_broken(broken.seq, broken.reason, broken.good, "chain")) from None
    walker.finish(conn)
    anchored = _anchored(*checkpoints.check(signed, walker.chain, walker.last, trust), walker, trust)
    if walker.unwritten is not None:
        raise _Found(replace(walker.unwritten, **anchored))
    mismatch = walker.books.mismatch(conn)
    agreements = len(walker.books.budget)
    if mismatch is not None:
        return Verification(False, walker.last, walker.prev, None, mismatch.reason, **anchored, kind="budget",
                            agreement_id=mismatch.agreement_id, agreements=agreements)
    return Verification(True, walker.last, walker.prev, **anchored, agreements=agreements)


def _broken(seq: int, reason: str, good: tuple[int, str], kind: Kind) -> Verification:
    return Verification(False, good[0], good[1], seq, reason, kind=kind)


class _Walker:
    """What `verify` keeps while walking: the chain's hashes at signed seqs, the books, the tail."""

    def __init__(self, start: Any, written: dict[int, frozenset[str]], wanted: set[int]) -> None:
        self.start, self.written, self.wanted = start, written, wanted
        self.floor = min(written) if written else None  # the journal holds every event from here on
        self.chain: dict[int, str] = {}  # the chain's hash at each signed seq
        self.tail: dict[int, str] = {}  # hashes of events after the starting head (appended meanwhile?)
        self.books = Books()
        self.unwritten: Verification | None = None  # the first event the journal contradicts
        self.last, self.prev, self.before = 0, GENESIS, GENESIS

    def step(self, link: Link) -> None:
        good = (self.last, self.prev)
        if link.seq == self.start.seq and link.hash != self.start.hash:
            raise _Found(_broken(link.seq, "its hash is not the one the chain head recorded for it "
                                           "(rewritten and re-hashed)", good, "chain"))
        self._journal(link, good)
        if link.seq > self.start.seq:
            self.tail[link.seq] = link.hash
        if link.seq in self.wanted:
            self.chain[link.seq] = link.hash
        self.books.add(link.event)
        self.before, self.prev, self.last = self.prev, link.hash, link.seq

    def _journal(self, link: Link, good: tuple[int, str]) -> None:
        if self.unwritten is not None:
            return
        hashes = self.written.get(link.seq)
        if hashes is not None and link.hash not in hashes:
            self.unwritten = _broken(link.seq, "its hash is not the one the sandbox recorded in its journal when it "
                                               "appended this event: rewritten and re-hashed", good, "journal")
        elif hashes is None and self.floor is not None and self.floor <= link.seq <= self.start.seq:
            self.unwritten = _broken(link.seq, "it was not appended by the sandbox: the sandbox's journal of the "
                                               "events it appended does not have it", good, "journal")

    def finish(self, conn: Connection) -> None:
        """The head read before the walk (and after it, if the walk found more) must end the chain:
        events appended while the walk ran are legitimate (PostgreSQL at READ COMMITTED), events
        beyond the newest head were not appended by the sandbox."""
        last, start = self.last, self.start
        if last < start.seq:
            raise _Found(_broken(last + 1, f"event {last + 1} is missing: the chain ends at event {last} but "
                                           f"the head records event {start.seq}", (last, self.prev), "chain"))
        if last == start.seq:
            return
        now = head(conn)
        if now.seq < last:
            raise _Found(_broken(now.seq + 1, f"event {now.seq + 1} was not appended by the sandbox: the head "
                                              f"records event {now.seq} as the last one",
                                 (now.seq, self.tail.get(now.seq, start.hash)), "chain"))
        if now.seq == last and now.hash != self.prev:
            raise _Found(_broken(last, "its hash is not the one the chain head recorded for it (rewritten and "
                                       "re-hashed)", (last - 1, self.before), "chain"))


def _anchored(good: list, finding: checkpoints.Finding | None, walker: _Walker, trust: Trust | None) -> dict[str, Any]:
    """The checkpoints' part of the answer; a finding ends the verification there."""
    last = walker.last
    anchored = {
        "checkpoints": len(good),
        "last_checkpoint_seq": good[-1]["seq"] if good else None,
        "last_checkpoint_ts": good[-1]["ts"] if good else None,
        "unsigned_events": last - (good[-1]["seq"] if good else 0),
        "signing_key": good[-1]["key_id"] if good and trust and trust.keys else None,
    }
    if finding is not None:
        verified = GENESIS if finding.events == 0 else walker.prev if finding.events == last else \
            walker.chain[finding.events]
        raise _Found(Verification(False, finding.events, verified, finding.first_bad_seq, finding.reason,
                                  **anchored, kind="checkpoints"))
    return anchored
