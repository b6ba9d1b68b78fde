"""What the FROM clause makes visible, and what each visible column *is*.

A relation is a private dataset, a public reference table, or a per-unit pre-aggregation. Each
exposes named outputs, and every output carries its lineage: the base dataset columns it is
computed from. Rules and the planner work from lineage, never from names: an output named like
the privacy unit is the unit only if its lineage is exactly the base unit column.

Neighbouring datasets differ by all rows of one unit across every dataset of its *domain*, so
relations may be fused only on that unit (private with private) or on any key with public data;
a per-unit pre-aggregation is one row per unit with bounds derived from its policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlglot import exp

from sandbox.compiler.contribution import Contribution
from sandbox.compiler.types import Facts, Typed, policy_type
from sandbox.policy import Column, Role

if TYPE_CHECKING:
    from sandbox.catalog import Dataset

__all__ = ["BaseColumn", "Bound", "Join", "Output", "Relation", "Scope", "base_relation", "walk_outer"]


@dataclass(frozen=True, order=True)
class BaseColumn:
    """One column of one registered dataset: the unit of lineage and of agreement scope."""

    dataset: str
    name: str


@dataclass(frozen=True)
class Output:
    """A column a relation exposes: its policy facts (role, bounds, keys), its static type, the
    base columns it is computed from, and whether it *is* the privacy unit."""

    column: Column
    typed: Typed
    reads: frozenset[BaseColumn]
    unit: bool = False


@dataclass
class Relation:
    alias: str
    kind: Literal["private", "public", "derived"]
    dataset: Dataset  # the base dataset (for a pre-aggregation: the one it reads)
    outputs: dict[str, Output]  # what the query reading this relation may reference
    max_rows: int
    max_groups: int
    constant: frozenset[str]  # outputs verified constant within a unit
    inner: exp.Select | None = None  # a pre-aggregation's validated SELECT
    inner_rows: int = 0  # a pre-aggregation: rows per unit it aggregates (its dataset's cap)

    @property
    def private(self) -> bool:
        return self.kind in ("private", "derived")

    @property
    def unit(self) -> str | None:
        """The output whose lineage is exactly the base privacy unit (by lineage, not name)."""
        return next((name for name, out in self.outputs.items() if out.unit), None)

    @property
    def columns(self) -> dict[str, Column]:
        return {name: out.column for name, out in self.outputs.items()}


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
        """Rows one unit can contribute to the joined rows: the product of each private
        relation's cap (each side is capped before the join: its engine file keeps at most the
        ceiling per unit, and a query asking for less filters by rank); a pre-aggregation is one
        row per unit. A public table can multiply rows too; the plan caps those (generate)."""
        m = 1
        for relation in self.relations:
            if relation.kind == "private":
                m *= relation.max_rows
        return m

    @property
    def max_groups(self) -> int:
        """Groups one unit can reach: the product of the relations' caps, at most max_rows."""
        g = 1
        for relation in self.relations:
            if relation.kind == "private":
                g *= relation.max_groups
        return min(g, self.max_rows)

    def by_alias(self, alias: str) -> Relation | None:
        return next((r for r in self.relations if r.alias == alias), None)

    def candidates(self, name: str) -> list[Relation]:
        return [r for r in self.relations if name in r.outputs]

    def datasets(self) -> list[Dataset]:
        seen: dict[str, Dataset] = {}
        for relation in self.relations:
            seen.setdefault(relation.dataset.name, relation.dataset)
        return list(seen.values())


def base_relation(dataset: Dataset, alias: str, contribution: Contribution | None = None) -> Relation:
    """A registered dataset read directly: each queryable column is its own lineage, with the
    query's own contribution bounds (within the policy's ceilings) where it asks for them."""
    policy = dataset.policy
    unit = None if policy.public else policy.privacy_unit
    contribution = contribution or Contribution()
    outputs = {
        name: Output(
            column=contribution.bounds_for(dataset, name, column) if not policy.public else column,
            typed=policy_type(column.type),
            reads=frozenset({BaseColumn(dataset.name, name)}),
            unit=unit is not None and name == unit.column,
        )
        for name, column in policy.queryable().items()
    }
    return Relation(
        alias=alias,
        kind="public" if policy.public else "private",
        dataset=dataset,
        outputs=outputs,
        max_rows=contribution.rows_for(dataset) if unit else 0,
        max_groups=unit.max_groups if unit else 0,
        constant=_constant(dataset),
    )


def _constant(dataset: Dataset) -> frozenset[str]:
    """Columns with one value per unit, known without looking at the data: all of them when the
    policy keeps one row per unit (the engine file holds at most that), else the declared ones."""
    unit = dataset.policy.privacy_unit
    if unit is None:
        return frozenset()
    if unit.max_rows == 1:
        return frozenset(dataset.policy.columns)
    return dataset.constant_dimensions | {unit.column}


def walk_outer(query: exp.Expression):
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
    # A per-unit value is one value per unit, bounded: a dimension, so "how many persons have k
    # visits" (a count: public keys 0..max_rows) or "persons by band of total cost" (private
    # keys, released only above the threshold) are GROUP BYs; it can be aggregated too.
    role = Role.dimension
    return Column(
        role=role,
        type="BIGINT" if integer else "DOUBLE",
        bounds=(lo, hi),
        description=f"per-unit {function}",
        nullable=function in ("avg", "min", "max"),
    )


@dataclass
class Bound:
    """The bound query: its scope, what each column reference names, every node's type."""

    scope: Scope | None
    facts: Facts = field(default_factory=Facts)
    refs: dict[int, tuple[Relation, str]] = field(default_factory=dict)
    aliases: dict[str, exp.Expression] = field(default_factory=dict)  # output name -> SELECT expression

    def ref(self, column: exp.Column) -> tuple[Relation, str] | None:
        """(relation, output name) of a column reference; None for an output alias in HAVING
        or ORDER BY, which refers to a released value."""
        return self.refs.get(id(column))

    def output(self, column: exp.Column) -> Output:
        relation, name = self.refs[id(column)]
        return relation.outputs[name]

    def is_unit(self, node: exp.Expression) -> bool:
        """The expression *is* a privacy unit: a column whose lineage is exactly a base unit."""
        while isinstance(node, exp.Paren):
            node = node.this
        return isinstance(node, exp.Column) and id(node) in self.refs and self.output(node).unit

    def reads(self) -> dict[str, set[str]]:
        """Base columns read anywhere in the query, by dataset (the agreement's column scope)."""
        found: dict[str, set[str]] = {d.name: set() for d in self.scope.datasets()}
        for relation, name in self.refs.values():
            for base in relation.outputs[name].reads:
                found.setdefault(base.dataset, set()).add(base.name)
        return found

    def typed(self, node: exp.Expression) -> Typed:
        return self.facts.of(node)
