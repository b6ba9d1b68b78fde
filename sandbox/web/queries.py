"""Read-only lookups the console needs beyond the service modules: names for ids, filter
choices, one event, and the two chart series. Each is an indexed lookup or one GROUP BY in the
database, so a page costs about the same with ten audit events or ten thousand."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from sandbox.audit import FIELDS
from sandbox.store.schema import EPSILON_UNIT, agreements, audit, jobs, ledger, users
from sandbox.web.charts import Series

__all__ = ["actions", "event", "people", "rejections", "spending"]

OUTCOMES = ("ok", "rejected", "failed", "cancelled")


def people(conn: Connection) -> dict[str, dict[str, str]]:
    """Every account's name and role by id (accounts are few; tokens are never read)."""
    rows = conn.execute(select(users.c.id, users.c.name, users.c.role))
    return {r.id: {"name": r.name, "role": r.role} for r in rows}


def actions(conn: Connection) -> list[str]:
    return list(conn.execute(select(audit.c.action).distinct().order_by(audit.c.action)).scalars())


def event(conn: Connection, seq: int) -> dict[str, Any] | None:
    row = conn.execute(select(audit).where(audit.c.seq == seq)).first()
    if row is None:
        return None
    values = {name: getattr(row, name) for name in FIELDS} | {"hash": row.hash, "prev_hash": row.prev_hash}
    values["details"] = json.loads(values["details"])
    return values


def spending(conn: Connection, top: int = 6) -> list[tuple[dict[str, Any], Series]]:
    """Cumulative epsilon charged over time for the `top` agreements that spent most: ledger
    entries not refunded (reserved or committed), as the agreement's own `spent` counts them.
    One scan of the ledger, summed per hour in the database (per day beyond 200 hours)."""
    chosen = {r.id: dict(r._mapping) for r in conn.execute(
        select(agreements.c.id, agreements.c.purpose, agreements.c.developer_id, agreements.c.status,
               agreements.c.budget_epsilon, agreements.c.spent_epsilon)
        .where(agreements.c.spent_epsilon > 0).order_by(agreements.c.spent_epsilon.desc()).limit(top))}
    if not chosen:
        return []
    hour = func.substr(ledger.c.created_at, 1, 13)  # '2026-11-22T14'
    rows = conn.execute(select(ledger.c.agreement_id, hour.label("bucket"), func.sum(ledger.c.epsilon).label("eps"))
                        .where(ledger.c.state != "refunded", ledger.c.agreement_id.in_(list(chosen)))
                        .group_by(ledger.c.agreement_id, hour).order_by(hour)).all()
    width = 10 if len({r.bucket for r in rows}) > 200 else 13  # days or hours
    sums: dict[str, dict[str, int]] = {a: {} for a in chosen}
    for r in rows:
        bucket = r.bucket[:width]
        sums[r.agreement_id][bucket] = sums[r.agreement_id].get(bucket, 0) + int(r.eps)
    names = people(conn)
    out = []
    for agreement_id, about in chosen.items():
        total, points = 0, []
        for bucket, eps in sums[agreement_id].items():  # in time order, as the query sorted them
            total += eps
            points.append((datetime.fromisoformat(bucket), total / EPSILON_UNIT))
        about |= {"developer": names.get(about["developer_id"], {}).get("name", "?"),
                  "budget": about["budget_epsilon"] / EPSILON_UNIT, "spent": about["spent_epsilon"] / EPSILON_UNIT}
        if points:
            out.append((about, Series(f"{agreement_id[:8]} · {about['developer']} · {about['purpose'][:48]}", points)))
    return out


def _json_text(column: Any, key: str, dialect: str) -> Any:
    if dialect == "sqlite":
        return func.json_extract(column, f"$.{key}")
    return cast(column, JSONB)[key].astext


def rejections(conn: Connection) -> list[tuple[str, int]]:
    """Refused jobs by reason: the compiler rule for refused SQL, otherwise the error code
    (budget exhausted, agreement inactive, ...), most frequent first."""
    dialect = conn.dialect.name
    reason = func.coalesce(func.nullif(_json_text(jobs.c.error, "rule", dialect), ""),
                           _json_text(jobs.c.error, "code", dialect)).label("reason")
    rows = conn.execute(select(reason, func.count().label("n")).where(jobs.c.status == "rejected")
                        .group_by(reason).order_by(func.count().desc(), reason))
    return [((r.reason or "unknown").replace("_", " "), r.n) for r in rows]
