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

from typing import TYPE_CHECKING

from sqlglot import exp

from sandbox.compiler.binder import Binder
from sandbox.compiler.rules import from_clause
from sandbox.compiler.scope import Bound, Join, Scope, walk_outer
from sandbox.compiler.vocabulary import AGGREGATES

if TYPE_CHECKING:
    from sandbox.compiler.context import Context

__all__ = ["bind"]


def bind(query: exp.Select, ctx: Context) -> Bound:
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

