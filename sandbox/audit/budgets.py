"""Every agreement's budget and spent budget, recomputed from the audit events alone.

The agreements table holds what the ledger's compare-and-set reads (`budget_*`, `spent_*`); the
audit log holds every change to them, hash-chained and signed. Whoever can write to the database
can reset `spent_epsilon` to 0 and hand an exhausted agreement more budget; the events still add
up to what was really spent. `verify` compares the two, and the ledger's own rows, per agreement.

What the events say, in integer units (sandbox/store/units.py):

    details.budget    {"epsilon", "delta"}  the agreement's whole budget from now on (approval)
    details.reserved  {"epsilon", "delta"}  added to spent (a job's reservation)
    details.refunded  {"epsilon", "delta"}  taken off spent (a job settled without reading data)

Events written before these fields existed are read by their meaning instead (an approval's
epsilon and delta, a submission's epsilon and delta, a settlement with `charge_kept: false`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements, ledger
from sandbox.store.units import budget_units, charge_units

__all__ = ["Books", "Mismatch"]

Units = tuple[int, int]  # (epsilon, delta) in store units
SETTLED = ("job.failed", "job.cancelled", "job.recovered")


@dataclass(frozen=True)
class Mismatch:
    agreement_id: str
    reason: str


class Books:
    """Fed every event in chain order (`add`), then compared with the database (`mismatch`)."""

    def __init__(self) -> None:
        self.budget: dict[str, Units] = {}
        self.spent: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self._reserved: dict[str, Units] = {}  # job -> its reservation, for settlements without amounts

    def add(self, event: dict[str, Any]) -> None:
        agreement, details = event["agreement_id"], event["details"]
        if agreement is None:
            return
        budget = _units(details.get("budget"))
        if budget is None and event["action"] == "agreement.approved" and "epsilon" in details:
            budget = budget_units(details["epsilon"], details["delta"])  # before `budget` was recorded
        if budget is not None:
            self.budget[agreement] = budget
        reserved = _units(details.get("reserved"))
        if reserved is None and event["action"] == "job.submitted":
            reserved = charge_units(details["epsilon"], details["delta"])  # before `reserved` was recorded
        if reserved is not None:
            self._reserved[event["job_id"]] = reserved
            self._move(agreement, reserved, +1)
        refunded = _units(details.get("refunded"))
        if refunded is None and event["action"] in SETTLED and details.get("charge_kept") is False:
            refunded = self._reserved.get(event["job_id"])  # before `refunded` was recorded
        if refunded is not None:
            self._move(agreement, refunded, -1)

    def _move(self, agreement: str, units: Units, sign: int) -> None:
        spent = self.spent[agreement]
        spent[0] += sign * units[0]
        spent[1] += sign * units[1]

    def mismatch(self, conn: Connection) -> Mismatch | None:
        """The first agreement whose stored budget, spent budget or ledger differs from its events."""
        stored = {r.id: r for r in conn.execute(select(agreements).order_by(agreements.c.created_at))}
        sums = select(ledger.c.agreement_id, func.sum(ledger.c.epsilon).label("eps"),
                      func.sum(ledger.c.delta).label("dlt"))
        held = {r.agreement_id: (int(r.eps), int(r.dlt)) for r in conn.execute(
            sums.where(ledger.c.state != "refunded").group_by(ledger.c.agreement_id))}
        for agreement_id in [*stored, *sorted((set(self.budget) | set(self.spent)) - set(stored))]:
            problem = self._compare(stored.get(agreement_id), held.get(agreement_id, (0, 0)), agreement_id)
            if problem:
                return Mismatch(agreement_id, f"agreement {agreement_id}: {problem}")
        return None

    def _compare(self, row: Any, held: Units, agreement_id: str) -> str | None:
        budget = self.budget.get(agreement_id, (0, 0))
        spent = tuple(self.spent.get(agreement_id, (0, 0)))
        if row is None:
            return "its events are in the audit log, but the agreement is not in the database (deleted?)"
        if (row.budget_epsilon, row.budget_delta) != budget:
            return (f"the database grants a budget of {_show(row.budget_epsilon, row.budget_delta)}, but its "
                    f"audit events grant {_show(*budget)}")
        if (row.spent_epsilon, row.spent_delta) != spent:
            return (f"the database says {_show(row.spent_epsilon, row.spent_delta)} spent, but its audit events "
                    f"charge {_show(*spent)} (budget {_show(*budget)})")
        if held != spent:
            return f"the ledger holds charges of {_show(*held)}, but its audit events charge {_show(*spent)}"
        if spent[0] > budget[0] or spent[1] > budget[1]:
            return f"its audit events charge {_show(*spent)}, more than its budget of {_show(*budget)}"
        return None


def _units(value: Any) -> Units | None:
    return (int(value["epsilon"]), int(value["delta"])) if isinstance(value, dict) else None


def _show(epsilon: int, delta: int) -> str:
    return f"epsilon {epsilon / EPSILON_UNIT:g} (delta {delta / DELTA_UNIT:g})"
