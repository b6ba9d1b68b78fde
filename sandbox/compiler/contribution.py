"""Contribution bounds the analyst chooses for one query, within the policy's ceilings.

The policy's `max_rows`/`max_groups` are ceilings set by the data owner (the engine file keeps each
unit's first `max_rows` rows by keyed-hash rank); a query may ask for fewer rows or groups per
unit (less noise, more rows left out), and for clamping bounds inside a measure's public bounds
(less noise for a sum or an average, more values clamped). `explain` shows what each choice
costs in noise and what it is estimated to leave out, before anything is spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.errors import InvalidParameter

if TYPE_CHECKING:
    from sandbox.catalog import Dataset
    from sandbox.policy import Column

__all__ = ["Contribution"]


@dataclass(frozen=True)
class Contribution:
    """`max_rows` per dataset, one `max_groups` for the query, `clamp` per "dataset.column"."""

    max_rows: dict[str, int] = field(default_factory=dict)
    max_groups: int | None = None
    clamp: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any) -> Contribution:
        """From a JSON-like mapping ({"max_rows": {...}, "max_groups": n, "clamp": {...}})."""
        if value is None or isinstance(value, Contribution):
            return value or cls()
        if not isinstance(value, dict) or set(value) - {"max_rows", "max_groups", "clamp"}:
            raise InvalidParameter(
                "contribution takes max_rows (per dataset), max_groups and clamp (per dataset.column), e.g. "
                '{"max_rows": {"social_insurance": 24}, "clamp": {"residents.monthly_income": [0, 50000]}}.',
                parameter="contribution",
            )
        rows = value.get("max_rows") or {}
        clamp = value.get("clamp") or {}
        if not isinstance(rows, dict) or not isinstance(clamp, dict):
            raise InvalidParameter("max_rows and clamp are mappings by dataset (and column).", parameter="contribution")
        return cls(
            max_rows={str(k): v for k, v in rows.items()},
            max_groups=value.get("max_groups"),
            clamp={str(k): tuple(v) if isinstance(v, list | tuple) else v for k, v in clamp.items()},
        )

    def rows_for(self, dataset: Dataset) -> int:
        ceiling = dataset.policy.privacy_unit.max_rows
        asked = self.max_rows.get(dataset.name)
        if asked is None:
            return ceiling
        if isinstance(asked, bool) or not isinstance(asked, int) or not 1 <= asked <= ceiling:
            raise InvalidParameter(
                f"max_rows for {dataset.name!r} must be a whole number from 1 to its policy's ceiling {ceiling} "
                f"(got {asked!r}); ask the data owner to raise the ceiling for more.",
                parameter="contribution.max_rows",
            )
        return asked

    def bounds_for(self, dataset: Dataset, name: str, column: Column) -> Column:
        """The column with the query's clamping bounds, if it asks for any."""
        asked = self.clamp.get(f"{dataset.name}.{name}")
        if asked is None:
            return column
        ok = (
            column.aggregable
            and len(asked) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in asked)
        )
        lo, hi = column.bounds if column.bounds else (None, None)
        if not ok or not lo <= asked[0] < asked[1] <= hi:
            raise InvalidParameter(
                f"clamp for {dataset.name}.{name} must be [low, high] inside its public bounds [{lo}, {hi}] "
                f"(got {list(asked) if isinstance(asked, tuple) else asked!r}); only measures with bounds can be "
                "clamped.",
                parameter="contribution.clamp",
            )
        return column.model_copy(update={"bounds": (float(asked[0]), float(asked[1]))})

    def check(self, catalog, touched: set[str]) -> None:
        """Every dataset named is one the query reads; every clamped column exists."""
        for name in [*self.max_rows, *(k.partition(".")[0] for k in self.clamp)]:
            if name not in touched:
                raise InvalidParameter(
                    f"contribution names dataset {name!r}, which this query does not read "
                    f"(it reads {', '.join(sorted(touched))}).",
                    parameter="contribution",
                )
        for key in self.clamp:
            dataset, _, column = key.partition(".")
            if column not in catalog.get(dataset).policy.columns:
                raise InvalidParameter(
                    f"clamp names no column {key!r}; write dataset.column.", parameter="contribution"
                )
        if self.max_groups is not None and (
            isinstance(self.max_groups, bool) or not isinstance(self.max_groups, int) or self.max_groups < 1
        ):
            raise InvalidParameter("max_groups must be a whole number of at least 1.", parameter="contribution")
