"""Column resolution and typing within one scope: the outer query's, an ON condition's (the
relations joined so far) or a pre-aggregation's. bind.py builds the scopes and decides, as DuckDB
does, which scope a name is looked up in; the binder resolves it there by lineage and types the
expressions around it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sandbox.compiler.context import suggest
from sandbox.compiler.scope import Bound, Relation, Scope, walk_outer
from sandbox.compiler.typecheck import TypeChecker
from sandbox.compiler.types import BIGINT, DOUBLE, Typed
from sandbox.compiler.vocabulary import AGGREGATES

if TYPE_CHECKING:
    from sandbox.compiler.context import Context

__all__ = ["Binder"]

NAME = "known_columns"


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

    def _aggregate(self, node: exp.Expression, types: TypeChecker) -> Typed | None:
        """Aggregates type their row-level arguments; their own value is a released number.
        None: the node is no aggregate (the type checker refuses it)."""
        if not isinstance(node, AGGREGATES):
            return None
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
