"""Every agreement's budget and spent budget, recomputed from the audit events alone.

The agreements table holds what the ledger's compare-and-set reads (`budget_*`, `spent_*`); the
audit log holds every change to them, hash-chained and signed. Whoever can write to the database
can reset `spent_epsilon` to 0 and hand an exhausted agreement more budget; the events still add
up to what was really spent. `verify` compares the two, and the ledger's own rows, per agreement,
and each agreement's dataset parts (sandbox/stewards.py): their spending and their steward's budget.

What the events say, in integer units (sandbox/store/units.py):

    details.budget    {"epsilon", "delta"}  the agreement's whole budget from now on (approval, amendment)
    details.reserved  {"epsilon", "delta"}  added to spent (a job's reservation)
    details.refunded  {"epsilon", "delta"}  taken off spent (a job settled without reading data)
    details.datasets  [name, ...]           a submission's private datasets: each one's part of the
                                            agreement (sandbox/stewards.py) is charged the same epsilon

Events written before these fields existed are read by their meaning instead (an approval's
epsilon and delta, a submission's epsilon and delta, a settlement with `charge_kept: false`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, agreements, dataset_grants, ledger
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
        self.parts: dict[tuple[str, str], int] = defaultdict(int)  # (agreement, dataset) -> epsilon charged
        self._datasets: dict[str, list[str]] = {}  # job -> the private datasets its reservation charged
        self.part_budgets: dict[tuple[str, str], int | None] = {}  # a steward's budget for a part (None: none)

    def add(self, event: dict[str, Any]) -> None:
        agreement, details = event["agreement_id"], event["details"]
        if agreement is None:
            return
        if event["action"] == "dataset.approved":
            epsilon = details.get("epsilon")
            self.part_budgets[agreement, event["dataset"]] = None if epsilon is None else budget_units(epsilon, 0.0)[0]
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
            self._datasets[event["job_id"]] = list(details.get("datasets") or ())
            for dataset in self._datasets[event["job_id"]]:
                self.parts[agreement, dataset] += reserved[0]
        refunded = _units(details.get("refunded"))
        if refunded is None and event["action"] in SETTLED and details.get("charge_kept") is False:
            refunded = self._reserved.get(event["job_id"])  # before `refunded` was recorded
        if refunded is not None:
            self._move(agreement, refunded, -1)
            for dataset in self._datasets.get(event["job_id"], ()):
                self.parts[agreement, dataset] -= refunded[0]

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
        return self._parts_mismatch(conn)

    def _parts_mismatch(self, conn: Connection) -> Mismatch | None:
        """The first dataset part whose spending differs from its events, or exceeds its steward's budget."""
        for row in conn.execute(select(dataset_grants).order_by(dataset_grants.c.agreement_id,
                                                                dataset_grants.c.dataset)):
            charged = self.parts.get((row.agreement_id, row.dataset), 0)
            where = f"agreement {row.agreement_id}, dataset {row.dataset}"
            granted = self.part_budgets.get((row.agreement_id, row.dataset))
            if row.budget_epsilon != granted:
                return Mismatch(row.agreement_id, f"{where}: the database grants epsilon {_eps(row.budget_epsilon)}, "
                                f"but its steward's approval event grants {_eps(granted)}")
            if row.spent_epsilon != charged:
                return Mismatch(row.agreement_id, f"{where}: the database says epsilon "
                                f"{row.spent_epsilon / EPSILON_UNIT:g} spent, but its audit events charge "
                                f"{charged / EPSILON_UNIT:g}")
            if row.budget_epsilon is not None and charged > row.budget_epsilon:
                return Mismatch(row.agreement_id, f"{where}: its audit events charge epsilon "
                                f"{charged / EPSILON_UNIT:g}, more than the steward's budget of "
                                f"{row.budget_epsilon / EPSILON_UNIT:g}")
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


def _eps(units: int | None) -> str:
    return "without a budget of its own" if units is None else f"{units / EPSILON_UNIT:g}"


def _show(epsilon: int, delta: int) -> str:
    return f"epsilon {epsilon / EPSILON_UNIT:g} (delta {delta / DELTA_UNIT:g})"
