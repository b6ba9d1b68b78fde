"""Identifiers are never output, filtered on or grouped by, wherever they are read (the outer
query, ON conditions and pre-aggregations alike). A privacy unit may appear only where it links
or counts units: COUNT(DISTINCT <unit>), an ON conjunct equating two units, and the unit a
pre-aggregation groups by and exposes. Judged by lineage (bind.py), never by name."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.rules.from_clause import unit_links
from sandbox.policy import Role

NAME = "no_identifiers"


def check(query: exp.Select, ctx: Context) -> None:
    bound = ctx.bound
    allowed: set[int] = set()
    for join in bound.scope.joins:
        for eq in unit_links(join.on, bound):
            allowed |= {id(_bare(eq.this)), id(_bare(eq.expression))}
    for relation in bound.scope.relations:
        if relation.inner is not None:
            group = relation.inner.args.get("group")
            exposed = [*(group.expressions if group else []), *(i.unalias() for i in relation.inner.expressions)]
            allowed |= {id(_bare(n)) for n in exposed if bound.is_unit(n)}
    unit = ctx.scope.unit_relation.unit
    for column in query.find_all(exp.Column):
        ref = bound.ref(column)
        if ref is None or id(column) in allowed:
            continue
        relation, name = ref
        output = relation.outputs[name]
        if output.column.role is not Role.identifier:
            continue
        parent = column.parent
        while isinstance(parent, exp.Paren):
            parent = parent.parent
        if (
            output.unit
            and isinstance(parent, exp.Distinct)
            and isinstance(parent.parent, exp.Count)
            and len(parent.expressions) == 1
            and relation in bound.scope.relations
        ):
            continue
        clause = _clause(column)
        if isinstance(clause, exp.Join):
            reason = "only privacy units equated across relations (ON a.unit = b.unit) may link them"
        elif isinstance(clause, exp.Where):
            reason = "filtering on an identifier targets single persons or enterprises"
        elif isinstance(clause, exp.Group):
            reason = "grouping by an identifier releases one group per person or enterprise"
        elif isinstance(parent, exp.Distinct):
            reason = f"only the privacy unit ({unit}) may be counted distinctly"
        else:
            reason = "identifiers are never released"
        where = " in ON" if isinstance(clause, exp.Join) else ""
        ctx.reject(
            column,
            f"The identifier column {column.name!r}{where}",
            reason,
            f"Count units with COUNT(DISTINCT {unit}); group by dimensions; join ON the units.",
            NAME,
        )


def _bare(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _clause(column: exp.Column) -> exp.Expression | None:
    """The nearest clause a column is read in: WHERE, GROUP BY, a JOIN's ON, or its SELECT."""
    node = column.parent
    while node is not None and not isinstance(node, exp.Where | exp.Group | exp.Join | exp.Select):
        node = node.parent
    return node
