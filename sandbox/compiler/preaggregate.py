"""A per-unit pre-aggregation in FROM: `(SELECT unit, SUM(x) AS total FROM ds GROUP BY unit) AS s`.

It is one row per unit, so the outer query may treat it like a one-row-per-unit dataset whose
columns have bounds derived from the policy (SUM: max_rows x the column's bounds; COUNT: 0 to
max_rows; AVG/MIN/MAX: the column's bounds) or from an explicit clamp in the query
(`LEAST(GREATEST(SUM(x), 0), 50000)`). Inside it, aggregates are per unit, so MIN and MAX are fine.

Its columns are bound like the outer query's (bind.py): the unit it exposes is the output whose
lineage is exactly the base unit column, whatever it is called, and every column it reads counts
towards the agreement's scope whether or not the outer query uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from sandbox.compiler.binder import Binder
from sandbox.compiler.context import suggest
from sandbox.compiler.scope import Output, Relation, Scope, base_relation, derived_column
from sandbox.compiler.types import Typed, policy_type
from sandbox.compiler.vocabulary import AGGREGATES, SAFE_ANONYMOUS, SCALAR_NODES, STRUCTURAL_NODES
from sandbox.errors import DatasetNotFound

if TYPE_CHECKING:
    from sandbox.compiler.context import Context

__all__ = ["clamped", "derived_relation"]

NAME = "preaggregate"
_PER_UNIT = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max"}
_ALLOWED = STRUCTURAL_NODES + SCALAR_NODES + AGGREGATES + (exp.Min, exp.Max, exp.Subquery)
FIX = "Write (SELECT <unit>, SUM(col) AS total FROM <dataset> [WHERE ...] GROUP BY <unit>) AS alias."


def derived_relation(subquery: exp.Subquery, ctx: Context) -> Relation:
    inner = _shape(subquery, ctx)
    table = inner.args["from_"].this
    dataset = _dataset(table, ctx)
    policy = dataset.policy
    scope = Scope(base_relation(dataset, table.alias or table.name, ctx.contribution))
    binder = Binder(ctx, ctx.bound, scope)
    for column in inner.find_all(exp.Column):
        binder.resolve(column)
        binder.types.check(column)
    where = inner.args.get("where")
    if where is not None:
        for node in where.find_all(*AGGREGATES, exp.Min, exp.Max):
            ctx.reject(node, "An aggregate in WHERE", "WHERE works on rows", "Filter rows only.", NAME)
        binder.types.condition(where.this, "WHERE")
    group = inner.args.get("group")
    keys = list(group.expressions) if group else []
    unit = policy.unit
    if not keys or not all(isinstance(k, exp.Column) for k in keys) or not any(binder.bound.is_unit(k) for k in keys):
        ctx.reject(
            group or inner,
            "A pre-aggregation not grouped by the privacy unit",
            f"it must give one row per {unit}",
            f"GROUP BY {unit} (and dimensions constant per {unit}).",
            NAME,
        )
    relation_constant = scope.base.constant
    for key in keys:
        if binder.bound.is_unit(key):
            continue
        output = binder.bound.output(key)
        if output.column.role.value != "dimension" or key.name not in relation_constant:
            ctx.reject(
                key,
                f"GROUP BY {key.name} in a pre-aggregation",
                f"{key.name!r} is not declared constant per {unit}, so there could be several rows per unit",
                f"Group by {unit} only, or by dimensions the policy declares constant_per_unit.",
                NAME,
            )
    grouped = {k.name for k in keys}
    outputs: dict[str, Output] = {}
    for item in inner.expressions:
        value = item.unalias()
        name = item.alias or (value.name if isinstance(value, exp.Column) else None)
        if name in outputs:
            ctx.reject(item, f"The name {name!r} twice", "each output needs its own name", "Rename one.", NAME)
        if isinstance(value, exp.Column) and value.name in grouped:
            outputs[name] = binder.bound.output(value)
            continue
        if not item.alias:
            ctx.reject(
                item,
                f"The pre-aggregated value {item.sql('duckdb')[:40]}",
                "the outer query needs a name",
                "Name it, e.g. SUM(x) AS total.",
                NAME,
            )
        outputs[item.alias] = _aggregate_output(value, binder, policy, ctx)
    if not any(out.unit for out in outputs.values()):
        ctx.reject(
            inner,
            f"A pre-aggregation without {unit}",
            "the outer query joins and counts units by it",
            f"Select {unit} too.",
            NAME,
        )
    return Relation(
        alias=subquery.alias,
        kind="derived",
        dataset=dataset,
        outputs=outputs,
        max_rows=1,
        max_groups=1,
        constant=frozenset(outputs),
        inner=inner,
        inner_rows=scope.base.max_rows,
    )


def _shape(subquery: exp.Subquery, ctx: Context) -> exp.Select:
    inner = subquery.this
    if not isinstance(inner, exp.Select):
        ctx.reject(subquery, "This subquery", "only a per-unit pre-aggregation may stand in FROM", FIX, NAME)
    if not subquery.alias:
        ctx.reject(subquery, "A subquery without an alias", "the outer query must name it", "Add AS s.", NAME)
    for key in ("joins", "having", "order", "limit", "offset", "distinct", "qualify", "with_", "with"):
        if inner.args.get(key):
            ctx.reject(
                inner.args[key] if not isinstance(inner.args[key], list) else inner.args[key][0],
                f"{key.upper().rstrip('_')} inside a pre-aggregation",
                "it is outside the supported subset",
                FIX,
                NAME,
            )
    for node in inner.walk():
        if node is inner:
            continue
        if isinstance(node, exp.Select | exp.Window) or (isinstance(node, exp.Subquery) and node is not subquery):
            ctx.reject(
                node,
                f"The construct {node.sql('duckdb')[:40]} inside a pre-aggregation",
                "pre-aggregations cannot nest queries or windows",
                FIX,
                NAME,
            )
        if isinstance(node, exp.Anonymous) and node.name.lower() in SAFE_ANONYMOUS:
            continue
        if not isinstance(node, _ALLOWED):
            ctx.reject(
                node, f"The construct {node.sql('duckdb')[:40]}", "it is not in the sandbox's allowlist", FIX, NAME
            )
    table = inner.args["from_"].this if inner.args.get("from_") else None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier) or table.args.get("db"):
        ctx.reject(table or inner, "The pre-aggregation's FROM", "it must name one catalog dataset", FIX, NAME)
    return inner


def _dataset(table: exp.Table, ctx: Context):
    try:
        dataset = ctx.catalog.get(table.name)
    except DatasetNotFound:
        ctx.reject(
            table,
            f"The dataset {table.name!r}",
            "it is not in the catalog",
            f"{suggest(table.name, ctx.catalog.names())}Available: {', '.join(ctx.catalog.names())}.",
            NAME,
        )
    if dataset.policy.public:
        ctx.reject(
            table,
            f"Pre-aggregating the public dataset {table.name!r}",
            "it has no privacy unit",
            "Join public reference data directly instead.",
            NAME,
        )
    return dataset


def _aggregate_output(value: exp.Expression, binder, policy, ctx: Context) -> Output:
    aggregate, clamp = clamped(value)
    if aggregate is None or type(aggregate) not in _PER_UNIT:
        ctx.reject(
            value,
            f"The pre-aggregated value {value.sql('duckdb')[:40]}",
            "it must be COUNT, SUM, AVG, MIN or MAX of a column, optionally clamped with "
            "LEAST(GREATEST(agg, low), high)",
            "Aggregate a column per unit.",
            NAME,
        )
    function = _PER_UNIT[type(aggregate)]
    target = aggregate.this
    if isinstance(target, exp.Distinct):
        ctx.reject(
            aggregate,
            f"DISTINCT in {aggregate.sql('duckdb')[:40]}",
            "it is not supported here",
            "Remove DISTINCT.",
            NAME,
        )
    source = None
    reads = frozenset()
    if function == "count":
        if not isinstance(target, exp.Star | exp.Column):
            ctx.reject(
                aggregate,
                f"The aggregate {aggregate.sql('duckdb')[:40]}",
                "COUNT takes * or a column",
                "Count rows or a column.",
                NAME,
            )
    if isinstance(target, exp.Column):
        output = binder.bound.output(target)
        reads = output.reads
        if function != "count":
            if not output.column.aggregable:
                ctx.reject(
                    aggregate,
                    f"The aggregate {aggregate.sql('duckdb')[:40]}",
                    "it needs a column with public bounds",
                    "Aggregate a measure with bounds.",
                    NAME,
                )
            source = output.column
    elif function != "count":
        ctx.reject(
            aggregate,
            f"The aggregate {aggregate.sql('duckdb')[:40]}",
            "it needs a column with public bounds",
            "Aggregate a measure with bounds.",
            NAME,
        )
    try:
        column = derived_column(function, source, binder.scope.base.max_rows, clamp)
    except ValueError:
        ctx.reject(value, "The clamp", "it leaves no range of values", "Widen it.", NAME)
    typed = policy_type(column.type)
    if column.is_integer:
        typed = Typed(typed.type, (int(column.bounds[0]), int(column.bounds[1])), source="BIGINT")
    return Output(column=column, typed=typed, reads=reads, unit=False)


def clamped(value: exp.Expression) -> tuple[exp.Expression | None, tuple[float, float] | None]:
    """Recognise agg, LEAST(GREATEST(agg, lo), hi) and GREATEST(LEAST(agg, hi), lo)."""
    if type(value) in _PER_UNIT:
        return value, None
    outer, inner_type = (exp.Least, exp.Greatest) if isinstance(value, exp.Least) else (exp.Greatest, exp.Least)
    if not isinstance(value, outer) or len(value.expressions) != 1 or not isinstance(value.this, inner_type):
        return None, None
    inner = value.this
    if len(inner.expressions) != 1 or type(inner.this) not in _PER_UNIT:
        return None, None
    a, b = _number(inner.expressions[0]), _number(value.expressions[0])
    if a is None or b is None:
        return None, None
    lo, hi = (a, b) if outer is exp.Least else (b, a)
    return inner.this, (lo, hi)


def _number(node: exp.Expression) -> float | None:
    if isinstance(node, exp.Neg):
        inner = _number(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    return None
