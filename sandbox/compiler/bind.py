"""Bind once, by lineage: every column reference of the query (outer query, ON conditions and
pre-aggregations alike) is resolved to the relation output it names and, through it, to the
base dataset columns it reads, with its static type; then every expression is typed.

Everything downstream works on this bound tree: the agreement scope is the set of base columns
*any* part of the query reads; a relation's privacy unit is the output whose lineage is exactly
the base unit column; identifier rules apply wherever an identifier is read. GROUP BY names
bind as DuckDB binds them: a column of FROM first, then an output alias, then an ordinal; in
HAVING a grouped column first, then an output alias; in ORDER BY an output alias first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sandbox.compiler.context import suggest
from sandbox.compiler.scope import BaseColumn, Join, Output, Relation, Scope, walk_outer
from sandbox.compiler.typecheck import Facts, TypeChecker
from sandbox.compiler.types import BIGINT, DOUBLE, Typed
from sandbox.compiler.vocabulary import AGGREGATES

if TYPE_CHECKING:
    from sandbox.compiler.context import Context

__all__ = ["Bound", "bind"]

NAME = "known_columns"


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


class Binder:
    """Resolves column references within one scope and types expressions there."""

    def __init__(self, ctx: Context, bound: Bound, scope: Scope, *, outer: exp.Select | None = None) -> None:
        self.ctx, self.bound, self.scope, self.outer = ctx, bound, scope, outer
        self.types = TypeChecker(ctx, bound.facts, self._column_type, self._keys, self._aggregate)

    # -- column resolution -------------------------------------------------------------------
    def resolve(self, column: exp.Column, *, canonical: bool = True) -> tuple[Relation, str]:
        name = column.name
        if column.table:
            relation = self.scope.by_alias(column.table)
            if relation is None:
                aliases = sorted(r.alias for r in self.scope.relations)
                self.ctx.reject(
                    column,
                    f"The qualifier {column.table!r}",
                    "it names no relation in FROM",
                    f"Use one of: {', '.join(aliases)}.",
                    "from_clause",
                )
            if name not in relation.outputs:
                self._unknown(column, relation)
        else:
            holders = self.scope.candidates(name)
            if len(holders) > 1:
                self.ctx.reject(
                    column,
                    f"The column {name!r}",
                    f"it exists in {', '.join(r.alias for r in holders)}",
                    f"Qualify it, e.g. {holders[0].alias}.{name}.",
                    NAME,
                )
            if not holders:
                self._unknown(column, self.scope.base)
            relation = holders[0]
        self.bound.refs[id(column)] = (relation, name)
        if canonical:
            # One relation: no qualifier; several: always qualified, so equal-looking names from
            # different relations never match structurally.
            if self.scope.fused or self.scope.joins:
                column.set("table", exp.to_identifier(relation.alias))
            else:
                column.set("table", None)
        return relation, name

    def resolvable(self, column: exp.Column) -> bool:
        if column.table:
            relation = self.scope.by_alias(column.table)
            return relation is not None and column.name in relation.outputs
        return len(self.scope.candidates(column.name)) == 1

    def _unknown(self, column: exp.Column, relation: Relation) -> None:
        name = column.name
        policy = relation.dataset.policy
        if relation.kind != "derived" and name in policy.columns and name not in relation.outputs:
            self.ctx.reject(
                column,
                f"The column {name!r}",
                "it is hidden by the dataset's policy",
                "Remove it; hidden columns cannot be queried in any way.",
                NAME,
            )
        visible = sorted({c for r in self.scope.relations for c in r.outputs})
        several = len(self.scope.relations) > 1
        where = relation.alias if several else repr(policy.name if relation.kind != "derived" else relation.alias)
        self.ctx.reject(
            column,
            f"The column {name!r}",
            f"{'relation ' if several else 'dataset '}{where} has no such column",
            f"{suggest(name, visible)}Columns: {', '.join(visible)}.",
            NAME,
        )

    def bind_columns(self, node: exp.Expression) -> None:
        for column in [n for n in walk_outer(node) if isinstance(n, exp.Column)]:
            if id(column) not in self.bound.refs:
                self.resolve(column)

    # -- callbacks for the type checker -----------------------------------------------------
    def _column_type(self, column: exp.Column) -> Typed:
        ref = self.bound.refs.get(id(column))
        if ref is None:
            alias = self.bound.aliases.get(column.name) if not column.table else None
            if alias is not None:  # an output name in HAVING / ORDER BY: a released value
                return self.types.check(alias)
            ref = self.resolve(column)
        relation, name = ref
        return relation.outputs[name].typed

    def _keys(self, node: exp.Expression) -> tuple[Any, ...] | None:
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Column) and id(node) not in self.bound.refs and not node.table:
            alias = self.bound.aliases.get(node.name)  # an output name in HAVING / ORDER BY
            if alias is not None and not (isinstance(alias, exp.Column) and alias.name == node.name):
                return self._keys(alias)
        if not isinstance(node, exp.Column) or id(node) not in self.bound.refs:
            return None
        return self.bound.output(node).column.keys

    def _aggregate(self, node: exp.Expression, types: TypeChecker) -> Typed:
        """Aggregates type their row-level arguments; their own value is a released number."""
        for key, value in node.args.items():
            if key == "this" and isinstance(value, exp.Star):
                continue
            if isinstance(value, exp.Distinct):
                for target in value.expressions:
                    types.check(target)
            elif isinstance(value, exp.Expression):
                types.check(value)
        if isinstance(node, exp.Count):
            return Typed(BIGINT, (0, 2**62))
        return Typed(DOUBLE)


def bind(query: exp.Select, ctx: Context) -> Bound:
    from sandbox.compiler.rules import from_clause

    bound = Bound(scope=None)  # pre-aggregations in FROM bind their columns into it first
    ctx.bound = bound
    scope = bound.scope = Scope(from_clause.relation(from_clause.source(query, ctx).this, ctx))
    for join in query.args.get("joins") or []:
        from_clause.join_syntax(join, scope, ctx)
        relation = from_clause.relation(join.this, ctx)
        if scope.by_alias(relation.alias) or relation.alias == scope.base.alias:
            ctx.reject(
                join.this,
                f"The name {relation.alias!r} twice",
                "each relation needs its own alias",
                "Alias the second one.",
                "from_clause",
            )
        scope.joins.append(Join("left" if (join.side or "").upper() == "LEFT" else "inner", relation, join.args["on"]))
    binder = Binder(ctx, bound, scope, outer=query)
    visible = Scope(scope.base)
    for join in scope.joins:  # ON sees the relations joined so far
        visible.joins.append(join)
        on_binder = Binder(ctx, bound, visible)
        on_binder.scope = visible
        for column in [n for n in join.on.walk() if isinstance(n, exp.Column)]:
            relation, _ = on_binder.resolve(column, canonical=False)
            column.set("table", exp.to_identifier(relation.alias))
        on_binder.types.condition(join.on, "The join condition")
    bound.aliases = {item.alias.lower(): item.unalias() for item in query.expressions if item.alias}
    _resolve_group_by(query, binder, ctx)
    outputs = set(bound.aliases)
    for column in [n for n in walk_outer(query) if isinstance(n, exp.Column)]:
        if id(column) in bound.refs or column.find_ancestor(exp.Join):
            continue
        if not column.table and column.name in outputs and column.find_ancestor(exp.Order, exp.Having):
            if not (column.find_ancestor(exp.Having) and _grouped_column(column, query, binder)):
                continue  # an output name, resolved after noise
        binder.resolve(column)
    where = query.args.get("where")
    if where is not None:
        binder.types.condition(where.this, "WHERE")
    for key in query.args["group"].expressions if query.args.get("group") else []:
        binder.types.check(key)
    for item in query.expressions:
        binder.types.check(item.unalias())
    having = query.args.get("having")
    if having is not None:
        binder.types.condition(having.this, "HAVING")
    order = query.args.get("order")
    if order is not None:
        for ordered in order.expressions:
            binder.types.check(ordered.this)
    return bound


def _grouped_column(column: exp.Column, query: exp.Select, binder: Binder) -> bool:
    """A bare name in HAVING that is also an output alias binds as DuckDB binds it: to the
    column of FROM when that column is a GROUP BY key, else to the alias (`SELECT sex AS educ,
    educ AS sex ... GROUP BY sex, educ HAVING sex > 2` filters on the column sex)."""
    if not binder.resolvable(column):
        return False
    relation = binder.scope.candidates(column.name)[0]
    group = query.args.get("group")
    for key in group.expressions if group else []:
        while isinstance(key, exp.Paren):
            key = key.this
        if isinstance(key, exp.Column) and binder.bound.ref(key) == (relation, column.name):
            return True
    return False


def _resolve_group_by(query: exp.Select, binder: Binder, ctx: Context) -> None:
    """GROUP BY keys as DuckDB binds them: an ordinal is that SELECT item; a bare name is a
    column of FROM if there is one, else an output alias."""
    group = query.args.get("group")
    if group is None:
        return
    items = query.expressions
    resolved = []
    for key in group.expressions:
        if isinstance(key, exp.Literal) and key.is_int:
            position = int(key.this)
            if not 1 <= position <= len(items):
                ctx.reject(
                    key,
                    f"GROUP BY {position}",
                    f"the SELECT list has {len(items)} item(s)",
                    f"Use a position from 1 to {len(items)}, or name the expression.",
                    "group_by_dimensions",
                )
            key = items[position - 1].unalias().copy()
        elif isinstance(key, exp.Column) and not key.table and not binder.resolvable(key):
            alias = binder.bound.aliases.get(key.name)
            if alias is not None:
                key = alias.copy()
        resolved.append(key)
    group.set("expressions", resolved)
    for key in resolved:
        if any(isinstance(n, AGGREGATES) for n in key.walk()):
            continue  # where_is_row_level explains
        binder.bind_columns(key)


__all__ += ["BaseColumn", "Binder"]
