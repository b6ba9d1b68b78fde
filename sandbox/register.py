"""The public register: every agreement an operator has approved, for anyone to read.

What a trusted data space owes the public (OpenSAFELY publishes every project and job): who uses
which data, for what, on which legal basis, for how long, with how much privacy budget granted
and spent, and how many results left the sandbox. Being listed is a condition of access: a
developer who requests an agreement accepts that, once approved, these fields are published.

Listed: agreements approved by the operator (awaiting the data stewards, active, spent, expired or
revoked). Never listed: requests waiting for a decision or rejected (nothing about their
developer), developers' names, SQL, results, job ids, columns.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from sandbox.store import Database, reading
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements, jobs, licences

__all__ = ["FIELDS", "LISTED", "entries"]

FIELDS = ("id", "organisation", "purpose", "legal_basis", "datasets", "valid_from", "valid_to", "status",
          "budget_epsilon", "budget_delta", "spent_epsilon", "spent_delta", "releases")
LISTED = ("awaiting", "active", "exhausted", "expired", "revoked")


def entries(db: Database) -> list[dict[str, Any]]:
    """Every listed agreement, the newest approval first, with exactly `FIELDS`."""
    releases = (select(jobs.c.agreement_id, func.count().label("n"))
                .where(jobs.c.status == "released", jobs.c.reused_from.is_(None))
                .group_by(jobs.c.agreement_id).subquery())
    query = (select(agreements, licences.c.organisation, func.coalesce(releases.c.n, 0).label("releases"))
             .select_from(agreements.outerjoin(licences, licences.c.user_id == agreements.c.developer_id)
                          .outerjoin(releases, releases.c.agreement_id == agreements.c.id))
             .where(agreements.c.status.in_(LISTED))
             .order_by(agreements.c.decided_at.desc(), agreements.c.id))
    with reading(db) as conn:
        rows = conn.execute(query).all()
    return [{
        "id": r.id, "organisation": r.organisation, "purpose": r.purpose, "legal_basis": r.legal_basis,
        "datasets": sorted(json.loads(r.datasets)), "valid_from": r.valid_from, "valid_to": r.valid_to,
        "status": r.status, "budget_epsilon": r.budget_epsilon / EPSILON_UNIT,
        "budget_delta": r.budget_delta / DELTA_UNIT,
        "spent_epsilon": r.spent_epsilon / EPSILON_UNIT, "spent_delta": r.spent_delta / DELTA_UNIT,
        "releases": int(r.releases),
    } for r in rows]
