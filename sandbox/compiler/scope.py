"""What the FROM clause makes visible: relations (a private dataset, a public reference table,
or a per-unit pre-aggregation), how they are joined, and how a column reference resolves.

Neighbouring datasets differ by all rows of one unit across every dataset of its *domain*, so
relations may be fused only on that unit (private with private) or on any key with public data;
a per-unit pre-aggregation is one row per unit with bounds derived from its policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlglot import exp

from sandbox.policy import Column, Role

if TYPE_CHECKING:
    from sandbox.catalog import Dataset

__all__ = ["Join", "Relation", "Scope", "walk_outer"]


@dataclass
class Relation:
    alias: str
    kind: Literal["private", "public", "derived"]
    dataset: Dataset  # the base dataset (for a pre-aggregation: the one it reads)
    columns: dict[str, Column]  # what the outer query may reference
    unit: str | None  # the privacy-unit column, for private and derived relations
    max_rows: int
    max_groups: int
    constant: frozenset[str]  # columns verified constant within a unit
    node: exp.Expression
    inner: exp.Select | None = None  # a pre-aggregation's validated SELECT
    derived_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def private(self) -> bool:
        return self.kind in ("private", "derived")


@dataclass
class Join:
    kind: Literal["inner", "left"]
    relation: Relation
    on: exp.Expression


@dataclass
class Scope:
    base: Relation
    joins: list[Join] = field(default_factory=list)

    @property
    def relations(self) -> list[Relation]:
        return [self.base, *(j.relation for j in self.joins)]

    @property
    def fused(self) -> bool:
        """Anything but one plain dataset: the general (projected, capped) generation path."""
        return bool(self.joins) or self.base.kind == "derived"

    @property
    def unit_relation(self) -> Relation:
        """The relation whose unit identifies a joined row: the first private one (the left
        side keeps its unit in a LEFT join)."""
        return next(r for r in self.relations if r.private)

    @property
    def max_rows(self) -> int:
        return min(r.max_rows for r in self.relations if r.private)

    @property
    def max_groups(self) -> int:
        return min(r.max_groups for r in self.relations if r.private)

    def by_alias(self, alias: str) -> Relation | None:
        return next((r for r in self.relations if r.alias == alias), None)

    def candidates(self, name: str) -> list[Relation]:
        return [r for r in self.relations if name in r.columns]

    def resolve(self, column: exp.Column) -> tuple[Relation, Column] | None:
        """The relation and policy column a reference names, or None if unknown/ambiguous
        (the known_columns rule explains which)."""
        if column.table:
            relation = self.by_alias(column.table)
            if relation is None or column.name not in relation.columns:
                return None
            return relation, relation.columns[column.name]
        found = self.candidates(column.name)
        if len(found) != 1:
            return None
        return found[0], found[0].columns[column.name]

    def datasets(self) -> list[Dataset]:
        seen: dict[str, Dataset] = {}
        for relation in self.relations:
            seen.setdefault(relation.dataset.name, relation.dataset)
        return list(seen.values())


def walk_outer(query: exp.Expression) -> Iterator[exp.Expression]:
    """Every node of the outer query, not descending into FROM/JOIN subqueries (a
    pre-aggregation is validated by its own rules)."""
    stack = [query]
    while stack:
        node = stack.pop()
        yield node
        for child in node.iter_expressions():
            if isinstance(child, exp.Subquery) and isinstance(child.parent, exp.From | exp.Join):
                continue
            stack.append(child)


def derived_column_bounds(function: str, column: Column | None, max_rows: int) -> tuple[float, float]:
    """Public bounds of a per-unit aggregate over at most max_rows clamped rows."""
    if function == "count":
        return 0.0, float(max_rows)
    assert column is not None and column.bounds is not None
    lo, hi = column.bounds
    if function == "sum":
        return min(lo, max_rows * lo, 0.0), max(hi, max_rows * hi, 0.0)
    return float(lo), float(hi)  # avg, min, max stay within the column's bounds


def derived_column(function: str, column: Column | None, max_rows: int, clamp: tuple[float, float] | None) -> Column:
    lo, hi = derived_column_bounds(function, column, max_rows)
    if clamp is not None:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    integer = function == "count" or (function in ("sum", "min", "max") and column is not None and column.is_integer)
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
    # A per-unit count is a small public range (0..max_rows): a dimension, so "how many persons
    # have k visits" is a GROUP BY with public keys; other per-unit values are measures.
    role = Role.dimension if function == "count" else Role.measure
    return Column(
        role=role,
        type="BIGINT" if integer else "DOUBLE",
        bounds=(lo, hi),
        description=f"per-unit {function}",
        nullable=function in ("avg", "min", "max"),
    )
