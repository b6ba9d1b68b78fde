"""The tamper-evident audit log: append-only, hash-chained, verifiable, exportable.

    hash_n = sha256(hash_{n-1} + canonical_json(event_n)),   hash_0 = 64 zeros

Events are appended in the same transaction as the state change they record (see ledger.py
and jobs.py); the chain head is locked for the append, so there is one writer at a time.
Changing, deleting or reordering any row breaks the chain at that row, and `verify` names it.
Recomputing the whole chain (or cutting it short) and moving the head does not; the signed
checkpoints of checkpoints.py catch that, and `verify` checks them too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, insert, select, update

from sandbox.store import now
from sandbox.store.migrations import GENESIS
from sandbox.store.schema import audit, audit_head

if TYPE_CHECKING:
    from sandbox.checkpoints import Trust

__all__ = ["AuditFilter", "Verification", "append", "canonical", "export", "search", "verify"]

FIELDS = ("seq", "ts", "actor", "role", "action", "outcome", "agreement_id", "dataset", "job_id", "details")


def canonical(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(prev_hash: str, event: dict[str, Any]) -> str:
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
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()).one()
    event = {
        "seq": head.seq + 1,
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
    digest = _digest(head.hash, event)
    conn.execute(
        insert(audit).values(**(event | {"details": canonical(event["details"])}), prev_hash=head.hash, hash=digest)
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=event["seq"], hash=digest))
    return event | {"hash": digest, "prev_hash": head.hash}


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


def verify(conn: Connection, trust: Trust | None = None) -> Verification:
    """Walk the whole chain in order; stop at the first event that does not check out. Then check
    the signed checkpoints against it (checkpoints.check): signatures under `trust`'s keys (not
    checked without a `trust`), their links, and that the chain still has each signed hash; and
    `trust`'s anchors, checkpoints kept outside the database, the same way.

    The head (last seq and hash, written with every append) is read before the walk and, if the
    walk found more events, again after it: events appended while the walk ran are legitimate
    (PostgreSQL reads at read committed), events beyond the newest head were not appended by us.
    Checkpoints are read before the walk too; later ones are checked next time.
    """
    from sandbox import checkpoints

    start = _head(conn)
    signed = checkpoints.stored(conn)
    wanted = {c["seq"] for c in signed} | {a["seq"] for a in (trust.anchors if trust else ())}
    chain: dict[int, str] = {}  # the chain's hash at each signed seq
    expected_seq, prev, before = 1, GENESIS, GENESIS
    tail: dict[int, str] = {}  # hashes of events after the starting head (appended meanwhile?)
    result = conn.execution_options(yield_per=5000).execute(select(audit).order_by(audit.c.seq))
    for row in result:
        event = _event(row)
        if row.seq != expected_seq:
            return Verification(
                False,
                expected_seq - 1,
                prev,
                expected_seq,
                f"event {expected_seq} is missing (next stored is {row.seq})",
            )
        if row.prev_hash != prev:
            return Verification(
                False, expected_seq - 1, prev, row.seq, "its prev_hash does not match the previous event"
            )
        if _digest(prev, event) != row.hash:
            return Verification(False, expected_seq - 1, prev, row.seq, "its content does not match its hash")
        if row.seq == start.seq and row.hash != start.hash:
            return Verification(
                False,
                expected_seq - 1,
                prev,
                row.seq,
                "its hash is not the one the chain head recorded for it (rewritten and re-hashed)",
            )
        if row.seq > start.seq:
            tail[row.seq] = row.hash
        if row.seq in wanted:
            chain[row.seq] = row.hash
        before, prev, expected_seq = prev, row.hash, expected_seq + 1
    last = expected_seq - 1
    if last < start.seq:
        return Verification(
            False,
            last,
            prev,
            last + 1,
            f"event {last + 1} is missing: the chain ends at event {last} but the head records event {start.seq}",
        )
    if last > start.seq:
        head = _head(conn)
        if head.seq < last:
            return Verification(
                False,
                head.seq,
                tail.get(head.seq, start.hash),
                head.seq + 1,
                f"event {head.seq + 1} was not appended by the sandbox: the head records event "
                f"{head.seq} as the last one",
            )
        if head.seq == last and head.hash != prev:
            return Verification(
                False,
                last - 1,
                before,
                last,
                "its hash is not the one the chain head recorded for it (rewritten and re-hashed)",
            )
    good, finding = checkpoints.check(signed, chain, last, trust)
    anchored = {
        "checkpoints": len(good),
        "last_checkpoint_seq": good[-1]["seq"] if good else None,
        "last_checkpoint_ts": good[-1]["ts"] if good else None,
        "unsigned_events": last - (good[-1]["seq"] if good else 0),
        "signing_key": good[-1]["key_id"] if good and trust and trust.keys else None,
    }
    if finding is not None:
        verified = GENESIS if finding.events == 0 else prev if finding.events == last else chain[finding.events]
        return Verification(False, finding.events, verified, finding.first_bad_seq, finding.reason, **anchored)
    return Verification(True, last, prev, **anchored)


def _head(conn: Connection) -> Any:
    return conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()


def _event(row: Any) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in FIELDS}
    values["details"] = json.loads(values["details"])
    return values


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    agreement_id: str | None = None
    dataset: str | None = None
    action: str | None = None
    outcome: str | None = None
    job_id: str | None = None
    since: str | None = None  # ISO-8601, inclusive
    until: str | None = None  # ISO-8601, exclusive

    def clause(self):
        conditions = [
            getattr(audit.c, name) == value
            for name, value in (
                ("actor", self.actor),
                ("agreement_id", self.agreement_id),
                ("dataset", self.dataset),
                ("action", self.action),
                ("outcome", self.outcome),
                ("job_id", self.job_id),
            )
            if value is not None
        ]
        if self.since:
            conditions.append(audit.c.ts >= self.since)
        if self.until:
            conditions.append(audit.c.ts < self.until)
        return and_(True, *conditions)


def search(
    conn: Connection, where: AuditFilter, *, limit: int = 100, offset: int = 0, newest_first: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """One page of matching events and the total count of matches."""
    from sqlalchemy import func

    total = conn.execute(select(func.count()).select_from(audit).where(where.clause())).scalar_one()
    order = audit.c.seq.desc() if newest_first else audit.c.seq.asc()
    rows = conn.execute(select(audit).where(where.clause()).order_by(order).limit(limit).offset(offset))
    return [_event(r) | {"hash": r.hash, "prev_hash": r.prev_hash} for r in rows], total


def _all(conn: Connection, where: AuditFilter) -> Iterator[dict[str, Any]]:
    # yield_per on the statement, not the connection: Connection.execution_options() changes the connection
    # in place, and on PostgreSQL the export's own audit event would then be INSERTed through a server-side
    # cursor (DECLARE ... CURSOR FOR INSERT: a syntax error).
    result = conn.execute(select(audit).where(where.clause()).order_by(audit.c.seq).execution_options(yield_per=5000))
    for row in result:
        yield _event(row) | {"hash": row.hash, "prev_hash": row.prev_hash}


def export(conn: Connection, fmt: str, where: AuditFilter | None = None) -> bytes:
    """The log (or a filtered part) as JSONL, CSV or Parquet; `details` stays canonical JSON so
    an exported event can be re-hashed by anyone."""
    where = where or AuditFilter()
    events = list(_all(conn, where))
    columns = [*FIELDS, "prev_hash", "hash"]
    if fmt == "jsonl":
        return "".join(canonical(e) + "\n" for e in events).encode("utf-8")
    flat = [{**e, "details": canonical(e["details"])} for e in events]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
        return buffer.getvalue().encode("utf-8")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(
            flat, schema=pa.schema([(c, pa.int64() if c == "seq" else pa.string()) for c in columns])
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    raise ValueError(f"unknown export format {fmt!r}; use jsonl, csv or parquet")
