"""What leaves the sandbox: noisy values, their accuracy, the charge and the plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from sandbox.compiler.plan import Plan

__all__ = ["Release"]


@dataclass(frozen=True)
class Release:
    table: pl.DataFrame
    accuracy: pl.DataFrame  # 95% interval half-width per cell; null where none is available
    lower: pl.DataFrame  # 95% interval per cell, noise and estimated bias: lower end (null: unbounded)
    upper: pl.DataFrame
    suppressed: list[bool]  # rows blanked by the minimum-count rule
    epsilon: float
    delta: float
    plan: Plan
    seconds: float = 0.0
    notes: tuple[str, ...] = ()  # what the reader must know: bias, bounding, why groups are missing
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_worker(cls, plan: Plan, output: pa.Table, seconds: float, notes: tuple[str, ...] = ()) -> Release:
        names = _unique([c.name for c in plan.outputs])
        values = output.select(list(range(len(names)))).rename_columns(names)

        def part(prefix: str) -> pl.DataFrame:
            return pl.from_arrow(output.select([f"{prefix}{i}" for i in range(len(names))]).rename_columns(names))

        suppressed = output.column("__suppressed").to_pylist()
        return cls(
            table=pl.from_arrow(values),
            accuracy=part("__hw_"),
            lower=part("__lo_"),
            upper=part("__hi_"),
            suppressed=[bool(s) for s in suppressed],
            epsilon=plan.epsilon,
            delta=plan.delta,
            plan=plan,
            seconds=seconds,
            notes=(*plan.notes, *notes),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rows of values, rows of half-widths, the charge."""
        return {
            "columns": self.table.columns,
            "rows": self.table.rows(),
            "half_widths": self.accuracy.rows(),
            "lower": self.lower.rows(),
            "upper": self.upper.rows(),
            "suppressed": self.suppressed,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "notes": list(self.notes),
            "bias": list(self.plan.bias),
        }


def _unique(names: list[str]) -> list[str]:
    """Output names as a table needs them: `SELECT COUNT(*), COUNT(*)` is valid SQL, but a
    DataFrame cannot have two columns of one name, so repeats get `_1`, `_2`, ... as in DuckDB."""
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 0
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        unique.append(candidate)
    return unique
