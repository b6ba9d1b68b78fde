"""Reading the log: filtered pages, one event, and exports (JSONL, CSV, Parquet).

An export by a person is itself an audit event, written in the transaction that read the
events (`export(..., by=auditor)`): the API, the console and any other caller go through here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select

from sandbox.audit.chain import FIELDS, Actor, append, canonical, event_of
from sandbox.store import Database, reading, writing
from sandbox.store.schema import audit

__all__ = ["FORMATS", "AuditFilter", "actions", "event", "export", "search"]

FORMATS = ("jsonl", "csv", "parquet")


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
            for name, value in asdict(self).items()
            if value is not None and name not in ("since", "until")
        ]
        if self.since:
            conditions.append(audit.c.ts >= self.since)
        if self.until:
            conditions.append(audit.c.ts < self.until)
        return and_(True, *conditions)

    def given(self) -> dict[str, str]:
        return {name: value for name, value in asdict(self).items() if value}


def _with_hashes(row: Any) -> dict[str, Any]:
    return event_of(row) | {"hash": row.hash, "prev_hash": row.prev_hash}


def search(
    db: Database, where: AuditFilter, *, limit: int = 100, offset: int = 0, newest_first: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """One page of matching events and the total count of matches."""
    with reading(db) as conn:
        total = conn.execute(select(func.count()).select_from(audit).where(where.clause())).scalar_one()
        order = audit.c.seq.desc() if newest_first else audit.c.seq.asc()
        rows = conn.execute(select(audit).where(where.clause()).order_by(order).limit(limit).offset(offset))
        return [_with_hashes(r) for r in rows], total


def event(db: Database, seq: int) -> dict[str, Any] | None:
    with reading(db) as conn:
        row = conn.execute(select(audit).where(audit.c.seq == seq)).first()
        return _with_hashes(row) if row is not None else None


def actions(db: Database) -> list[str]:
    """The actions the log has seen (for a filter's choices)."""
    with reading(db) as conn:
        return list(conn.execute(select(audit.c.action).distinct().order_by(audit.c.action)).scalars())


def export(db: Database, fmt: str, where: AuditFilter | None = None, *, by: Actor | None = None) -> bytes:
    """The log (or a filtered part) as JSONL, CSV or Parquet, oldest first; `details` stays
    canonical JSON so an exported event can be re-hashed by anyone. With `by`, the export is
    recorded as an `audit.exported` event in the same transaction."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use jsonl, csv or parquet")
    where = where or AuditFilter()
    with writing(db) if by is not None else reading(db) as conn:
        body = _render(_all(conn, where), fmt)
        if by is not None:
            append(conn, action="audit.exported", actor=by.id, role=by.role,
                   details={"format": fmt, "filter": where.given()})
    return body


def _all(conn: Connection, where: AuditFilter) -> list[dict[str, Any]]:
    # yield_per on the statement, not the connection: Connection.execution_options() changes the connection
    # in place, and on PostgreSQL the export's own audit event would then be INSERTed through a server-side
    # cursor (DECLARE ... CURSOR FOR INSERT: a syntax error).
    query = select(audit).where(where.clause()).order_by(audit.c.seq).execution_options(yield_per=5000)
    return [_with_hashes(row) for row in conn.execute(query)]


def _render(events: list[dict[str, Any]], fmt: str) -> bytes:
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.int64() if c == "seq" else pa.string()) for c in columns])
    table = pa.Table.from_pylist(flat, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
