"""Generate the only SQL DuckDB will run: bounded aggregation over the attached dataset, the
quantile histograms, and the post-processing over the *noisy* released table. User expressions
enter only as typed, validated sqlglot trees, rendered by render.py into SQL that cannot fail
on any value (`render` below is that Renderer)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp, parse_one

from sandbox.catalog import QUANTIZED_PREFIX, RANK_COLUMN, Dataset
from sandbox.compiler import extremes, intervals, products
from sandbox.compiler.plan import Primitive
from sandbox.compiler.render import Renderer
from sandbox.compiler.scope import Relation, Scope
from sandbox.compiler.shape import matches_key
from sandbox.compiler.types import Facts
from sandbox.compiler.vocabulary import is_aggregate
from sandbox.policy import Column
from sandbox.privacy.grid import clamped_sql, sql_double
from sandbox.privacy.grid import sql_number as _num

__all__ = ["aggregate_sql", "bounded_relation", "histogram_sql", "output_sql"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb")


Render = Renderer


def bounded_relation(
    dataset: Dataset,
    where: exp.Where | None,
    keys: list[exp.Expression],
    render: Render,
    *,
    unit: str,
    max_rows: int,
    bounding: bool,
    groups_pass: bool,
    max_groups: int,
) -> str:
    """Rows after contribution bounding: the precomputed keyed-hash rank keeps at most
    max_rows rows per unit (a filter, not a window), then the user's row-level WHERE."""
    conditions = []
    if bounding:
        conditions.append(f"{RANK_COLUMN} <= {max_rows}")
    if where is not None:
        conditions.append(f"({render.sql(where.this)})")
    relation = f"SELECT * FROM {_q(dataset.name)}.main.data"
    if conditions:
        relation += " WHERE " + " AND ".join(conditions)
    if groups_pass:
        # Keep each unit's first max_groups groups, ordered by the group's lowest keyed rank:
        # uniform and secret-keyed like the row choice, with no secret in the SQL.
        key_list = ", ".join(render.sql(k) for k in keys)
        relation = (
            "SELECT * FROM (SELECT *, dense_rank() OVER (PARTITION BY "
            f"{_q(unit)} ORDER BY __group_rank) AS __group_index FROM (SELECT *, min({RANK_COLUMN}) "
            f"OVER (PARTITION BY {_q(unit)}, {key_list}) AS __group_rank FROM ({relation}) AS r) AS g) "
            f"AS h WHERE __group_index <= {max_groups}"
        )
    return relation


def _clamped(p: Primitive, ref: str | None = None) -> str:
    value = clamped_sql(ref or _q(p.column), p.lo, p.hi)
    if p.power == 1:
        return value
    deviation = f"({value} - {_num(p.shift)})" if p.shift else value
    return f"({deviation} * {deviation})"


def _value_ref(p: Primitive, colmap: dict[str, str] | None, values: dict[str, str] | None) -> str | None:
    """How the bounded rows hold a primitive's value: a fused row's projected __c<i>, an
    aggregated expression's SQL on one dataset's row, or (None) the column by its name."""
    if p.column is None:
        return None
    if colmap is not None:
        return colmap[p.column]
    return (values or {}).get(p.column)


def _primitive_sql(
    p: Primitive,
    unit_column: str,
    dataset: Dataset | None,
    colmap: dict[str, str] | None,
    values: dict[str, str] | None = None,
) -> str:
    ref = _value_ref(p, colmap, values)
    if p.kind == "count":
        return "COUNT(*)" if p.column is None else f"COUNT({ref or _q(p.column)})"
    if p.kind == "distinct":
        value = ref or _q(p.column)
        if p.values is not None:  # only the declared keys count: a unit adds at most all of them
            listed = ", ".join(_sql(exp.convert(v)) for v in p.values)
            value = f"CASE WHEN {value} IN ({listed}) THEN {value} END"
        return f"COUNT(DISTINCT {value})"
    if p.kind == "moment":
        other = colmap[p.other] if colmap is not None else (values or {}).get(p.other) or _q(p.other)
        return products.moment_sql(p, ref or _q(p.column), other)
    if p.kind == "units":
        if colmap is not None:
            return f"COUNT(DISTINCT {ref or unit_column})"
        return f"COUNT(DISTINCT {_q(unit_column)})"
    if p.kind == "sum":
        # Exact integer sum of quantized values: order-independent, overflow ruled out by plan.
        minus = f" - {p.center}" if p.center else ""
        if dataset is not None and ref is None and p.power == 1 and dataset.quantized_step(p.column) == p.step:
            stored = _q(QUANTIZED_PREFIX + p.column)  # clamped and quantized at registration
            return f"CAST(COALESCE(SUM({stored}{minus}), 0) AS BIGINT)"
        return f"CAST(COALESCE(SUM(CAST(ROUND({_clamped(p, ref)} / {_num(p.step)}) AS BIGINT){minus}), 0) AS BIGINT)"
    raise ValueError(p.kind)


def aggregate_sql(
    relation: str,
    keys: list[exp.Expression],
    primitives: list[Primitive],
    render: Render,
    *,
    unit: str,
    dataset: Dataset | None = None,
    colmap: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> str:
    grouped = [_key_sql(k, i, colmap, render) for i, k in enumerate(keys)]
    columns = [f"{_transported(g, k, render)} AS __k{i}" for i, (g, k) in enumerate(zip(grouped, keys, strict=True))]
    columns += [
        f"{_primitive_sql(p, unit, dataset, colmap, values)} AS {p.id}"
        for p in primitives
        if p.kind != "quantile" and p.from_histogram is None
    ]
    if len(columns) == len(keys):
        columns.append("COUNT(*) AS __rows")
    sql = f"SELECT {', '.join(columns)} FROM ({relation}) AS b"
    if keys:
        sql += " GROUP BY " + ", ".join(grouped)
    return sql


def _key_sql(key: exp.Expression, index: int, colmap: dict[str, str] | None, render: Render) -> str:
    """Fused rows carry their keys projected as __k<i>; a single dataset computes them here."""
    return f"__k{index}" if colmap is not None else render.sql(key)


def temporal(key: exp.Expression, render: Render) -> str | None:
    """The type of a DATE or TIMESTAMP key, else None."""
    name = render.facts.of(key).type.name
    return name if name in ("DATE", "TIMESTAMP") else None


def _transported(grouped: str, key: exp.Expression, render: Render) -> str:
    """A group key as it leaves the engine: DATE and TIMESTAMP keys as text, because Python's
    date types cannot hold DuckDB's whole range (infinity arrives as 9999-12-31, and years past
    9999 as text), so two different groups could arrive as one key. The text is converted back
    after the noise (output_sql)."""
    return f"CAST({grouped} AS VARCHAR)" if temporal(key, render) else grouped


def histogram_sql(
    relation: str,
    keys: list[exp.Expression],
    p: Primitive,
    render: Render,
    colmap: dict[str, str] | None = None,
    dataset: Dataset | None = None,
    values: dict[str, str] | None = None,
) -> str:
    """Counts per candidate of the clamped values snapped to the candidate grid; only these
    counts (never values) reach the exponential mechanism, inside the worker.

    When the candidate spacing is a whole number k of the stored sum grid's steps, the bins come
    from the stored grid value q (clamped at registration) in integer arithmetic, half as costly
    as clamping and rounding doubles; a value within half a grid step of a bin's edge may land
    in the neighbouring bin, which changes nothing about privacy (one row, one bin)."""
    ref = _value_ref(p, colmap, values)
    grid = dataset.quantized_step(p.column) if dataset is not None and ref is None else None
    ref = ref or _q(p.column)
    k, origin = (p.step / grid, p.lo / grid) if grid else (0.5, 0.5)
    if k.is_integer() and origin.is_integer():
        stored = _q(QUANTIZED_PREFIX + p.column)  # q >= origin: ROUND is floor(x + 1/2)
        bin_sql = f"(2 * ({stored} - {int(origin)}) + {int(k)}) // {2 * int(k)}"
    else:
        bin_sql = f"CAST(ROUND(({_clamped(p, ref)} - {_num(p.lo)}) / {_num(p.step)}) AS INTEGER)"
    grouped = [_key_sql(k, i, colmap, render) for i, k in enumerate(keys)]
    columns = [f"{_transported(g, k, render)} AS __k{i}" for i, (g, k) in enumerate(zip(grouped, keys, strict=True))]
    group = ", ".join([*grouped, bin_sql])
    return (
        f"SELECT {', '.join(columns + [f'{bin_sql} AS __bin', 'COUNT(*) AS __n'])} "
        f"FROM ({relation}) AS b WHERE {ref} IS NOT NULL GROUP BY {group}"
    )


def fused_rows(
    scope: Scope,
    where: exp.Where | None,
    keys: list[exp.Expression],
    primitives: list[Primitive],
    render: Render,
    *,
    m: int,
    cap: bool,
    groups_pass: bool,
    max_groups: int,
    values: dict[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """Joined (or pre-aggregated) rows, projected to what the query needs: the unit of each
    row, an order over each unit's joined rows, the group keys and the aggregated columns.

    Each private relation is capped *before* the join: its engine file holds at most its
    ceiling of rows per unit, and a query asking for fewer keeps those of rank <= k. So a unit's
    joined rows are at most the product m of the caps, with no window. Only a public table whose
    joined value repeats can multiply rows beyond that (`cap`): then each unit keeps its first m
    joined rows in that order."""

    def relation_sql(relation: Relation) -> str:
        if relation.kind == "derived":
            return f"({_derived_sql(relation, render)}) AS {_q(relation.alias)}"
        table = f"{_q(relation.dataset.name)}.main.data"
        if relation.kind == "private" and relation.max_rows < _stored_rows(relation.dataset):
            table = f"(SELECT * FROM {table} WHERE {RANK_COLUMN} <= {relation.max_rows})"
        return f"{table} AS {_q(relation.alias)}"

    parts = [relation_sql(scope.base)]
    for join in scope.joins:
        parts.append(
            f"{'LEFT ' if join.kind == 'left' else ''}JOIN {relation_sql(join.relation)} ON {render.sql(join.on)}"
        )
    unit_relation = scope.unit_relation
    # One order key per joined row, unique within a unit when only private relations are joined:
    # each relation's rank is unique within the unit, so (rank_1, rank_2, ...) is, and it is
    # packed into one integer (ranks are at most the ceilings). A public table's own columns
    # break the ties its repeated keys create, so the choice stays deterministic.
    order = "0"
    for relation in (r for r in scope.relations if r.kind == "private"):
        width = _stored_rows(relation.dataset) + 1
        order = f"({order}) * {width} + COALESCE({_q(relation.alias)}.{RANK_COLUMN}, 0)"
    ties = [f"{_q(r.alias)}.{_q(c)}" for r in scope.relations if r.kind == "public" for c in r.columns]
    select = [f"{_q(unit_relation.alias)}.{_q(unit_relation.unit)} AS __unit", f"{order} AS __o"]
    select += [f"{tie} AS __t{i}" for i, tie in enumerate(ties)]
    select += [f"{render.sql(k)} AS __k{i}" for i, k in enumerate(keys)]
    colmap: dict[str, str] = {}
    for column in (c for p in primitives for c in (p.column, p.other)):
        if column is not None and column not in colmap:
            colmap[column] = f"__c{len(colmap)}"
            if values and column in values:  # an aggregated expression, computed on the joined row
                select.append(f"{values[column]} AS {colmap[column]}")
                continue
            alias, _, name = column.partition(".")
            select.append(f"{_q(alias)}.{_q(name)} AS {colmap[column]}")
    rows = f"SELECT {', '.join(select)} FROM {' '.join(parts)}"
    if where is not None:
        rows += f" WHERE {render.sql(where.this)}"
    rank = "__o"
    if cap:
        ordering = ", ".join(["__o", *(f"__t{i}" for i in range(len(ties)))])
        rows = (
            f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY __unit ORDER BY {ordering}) AS __n "
            f"FROM ({rows}) AS j) AS c WHERE __n <= {m}"
        )
        rank = "__n"
    if groups_pass:
        key_list = ", ".join(f"__k{i}" for i in range(len(keys)))
        rows = (
            f"SELECT * FROM (SELECT *, dense_rank() OVER (PARTITION BY __unit ORDER BY __group_rank) AS __group_index "
            f"FROM (SELECT *, min({rank}) OVER (PARTITION BY __unit, {key_list}) AS __group_rank FROM ({rows}) AS r) "
            f"AS g) AS h WHERE __group_index <= {max_groups}"
        )
    return rows, colmap


def _stored_rows(dataset: Dataset) -> int:
    """Rows per unit the engine file holds: the policy's ceiling (or, for an engine file built
    before registration bounded it, every row)."""
    ceiling = dataset.policy.privacy_unit.max_rows
    return ceiling if dataset.prebounded else max(dataset.max_rows_per_unit, ceiling)


_PER_UNIT_SQL = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Avg: "AVG", exp.Min: "MIN", exp.Max: "MAX"}


def _derived_sql(relation: Relation, render: Render) -> str:
    """A validated per-unit pre-aggregation, regenerated: values clamped to the policy bounds
    before aggregating, results clamped to the derived bounds."""
    from sandbox.compiler.preaggregate import clamped as recognise

    inner = relation.inner
    policy = relation.dataset.policy
    table = inner.args["from_"].this
    items = []
    for item in inner.expressions:
        value = item.unalias()
        name = item.alias or value.name
        if isinstance(value, exp.Column):
            items.append(f"{render.sql(value)} AS {_q(name)}")
            continue
        aggregate, _ = recognise(value)
        target = aggregate.this
        if isinstance(target, exp.Star):
            inner_sql = "COUNT(*)"
        elif isinstance(aggregate, exp.Count):
            inner_sql = f"COUNT({render.sql(target)})"
        else:
            lo, hi = policy.columns[target.name].bounds
            inner_sql = f"{_PER_UNIT_SQL[type(aggregate)]}({clamped_sql(render.sql(target), lo, hi)})"
        column = relation.columns[name]
        lo, hi = column.bounds
        if isinstance(aggregate, exp.Count):  # never NULL; stays an integer (a key may group by it)
            items.append(f"LEAST(GREATEST({inner_sql}, {_num(lo)}), {_num(hi)}) AS {_q(name)}")
        elif column.is_integer:  # typed BIGINT by the binder: a finite whole number after clamping
            items.append(f"CAST({clamped_sql(inner_sql, lo, hi)} AS BIGINT) AS {_q(name)}")
        else:
            items.append(f"{clamped_sql(inner_sql, lo, hi)} AS {_q(name)}")
    sql = f"SELECT {', '.join(items)} FROM {_q(relation.dataset.name)}.main.data AS {_q(table.alias or table.name)}"
    conditions = []
    dataset = relation.dataset
    if relation.inner_rows < _stored_rows(dataset):
        conditions.append(f"{RANK_COLUMN} <= {relation.inner_rows}")
    if inner.args.get("where") is not None:
        conditions.append(f"({render.sql(inner.args['where'].this)})")
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return sql + " GROUP BY " + ", ".join(render.sql(k) for k in inner.args["group"].expressions)


@dataclass(frozen=True)
class _Released:
    """What the post-processing SQL can refer to: the noisy primitives by need, their public
    parameters, and which sums are centred on which count."""

    keys: list[exp.Expression]
    needs: dict[tuple, str]
    columns: dict[str, Column]
    by_id: dict[str, Primitive]
    paired: dict[str, str]  # centred sum id -> count id
    key_of: Callable[[exp.Column], str]
    key_types: list[str | None]  # DATE/TIMESTAMP keys arrive as text (see _transported)
    aliases: frozenset[int] = frozenset()  # ids of HAVING / ORDER BY names bound to an output alias
    facts: Facts | None = None  # the types typecheck.py decided (comparisons' operand types)
    pieces: dict[str, str] = field(default_factory=dict)  # interval parts computed once (products.py)

    def ref(self, kind: str, column: str | None = None, power: int = 1, alpha: float | None = None) -> str:
        return self.needs[(kind, column, power, alpha)]

    def share(self, sql: str) -> str:
        """A complete expression used more than once (an aggregate's value in its cell and its
        interval, an interval's width at both ends) as a column of its own, computed once in a
        level before the output (products.levels). DuckDB binds every node of the output SQL
        anew for each job, and that binding is most of the engine's own time on small data."""
        if len(sql) <= 24:
            return sql
        return self.pieces.setdefault(sql, f"__iv{len(self.pieces)}")

    def plain_sum(self, column: str) -> str:
        """SUM(x) from its primitive: a centred sum adds back centre x count."""
        s = self.ref("sum", column)
        if s not in self.paired:
            return s
        return f"({s} + {sql_double(self.center(s))} * {self.paired[s]})"

    def center(self, pid: str) -> float:
        p = self.by_id[pid]
        return p.center * p.step


def count_ref(node: exp.Count, ctx: _Released) -> str:
    """The primitive a COUNT is released from."""
    inner = node.this
    if isinstance(inner, exp.Star):
        return ctx.ref("count")
    if isinstance(inner, exp.Distinct):
        column = ctx.key_of(inner.expressions[0])
        return ctx.needs.get(("units", column, 1, None)) or ctx.ref("distinct", column)
    return ctx.ref("count", ctx.key_of(inner))


def distinct_cap(node: exp.Count, ctx: _Released) -> str | None:
    """The most distinct values COUNT(DISTINCT col) can count when the column's domain is public
    (declared keys, BOOLEAN): a noisy count above it is clipped to it. Not for bounded numbers:
    bounds clamp values in sums, but values beyond them exist and are distinct values too."""
    inner = node.this
    if not isinstance(inner, exp.Distinct) or ctx.needs.get(("units", ctx.key_of(inner.expressions[0]), 1, None)):
        return None
    column = ctx.columns[ctx.key_of(inner.expressions[0])]
    if column.keys is not None:
        return f"CAST({len([k for k in column.keys if k is not None])} AS DOUBLE)"
    if column.type == "BOOLEAN":
        return "CAST(2 AS DOUBLE)"
    return None


def _formula(node: exp.Expression, ctx: _Released) -> exp.Expression:
    """An aggregate of the user's query, as arithmetic over released (noisy) primitives, clipped
    to what the bounds make possible (a count >= 0, a sum of non-negative values >= 0, an
    average inside the bounds): post-processing, free, and never further from the truth."""
    if isinstance(node, exp.Count):
        text = intervals.at_least(count_ref(node, ctx), 0)
        cap = distinct_cap(node, ctx)
        return _value(text if cap is None else intervals.at_most(ctx.share(text), cap), ctx)
    if isinstance(node, products.PAIRED):
        return _value(products.formula(node, ctx), ctx)
    column = ctx.key_of(node.this)
    lo, hi = ctx.columns[column].bounds
    if isinstance(node, exp.Median | exp.PercentileCont | exp.Quantile | exp.Min | exp.Max):
        return exp.column(ctx.ref("quantile", column, alpha=extremes.quantile_level(node)))
    if isinstance(node, exp.Sum):
        s = ctx.ref("sum", column)
        text = s if s not in ctx.paired else ctx.plain_sum(column)
        if lo >= 0:
            text = intervals.at_least(ctx.share(text), 0)
        elif hi <= 0:
            text = intervals.at_most(ctx.share(text), 0)
        return _value(text, ctx)
    n = ctx.ref("count", column)
    if isinstance(node, exp.Avg):
        s = ctx.ref("sum", column)
        mean = f"{s} / GREATEST({n}, 1)"
        if s in ctx.paired:  # centred: AVG = c + SUM(x - c) / COUNT(x)
            mean = f"{_num(ctx.center(s))} + {mean}"
        text = clamped_sql(ctx.share(mean), lo, hi)
    else:
        # Q = sum of (x - c)^2 and S = sum of (x - c), for c the middle the squares were taken
        # from: VAR = (Q - S^2 / n) / (n - 1), whatever c is
        s2 = ctx.ref("sum", column, power=2)
        c = ctx.by_id[s2].shift
        s = f"({ctx.plain_sum(column)} - {sql_double(c)} * {n})" if c else ctx.plain_sum(column)
        denominator = (
            f"GREATEST({n}, 1)" if isinstance(node, exp.VariancePop | exp.StddevPop) else f"GREATEST({n} - 1, 1)"
        )
        variance = clamped_sql(f"({s2} - {s} * {s} / GREATEST({n}, 1)) / {denominator}", 0, (hi - lo) ** 2 / 4)
        text = variance if isinstance(node, exp.Variance | exp.VariancePop) else f"SQRT({ctx.share(variance)})"
    return _value(text, ctx)


def _value(text: str, ctx: _Released) -> exp.Expression:
    """A released value's formula in the user's expression: its shared column, or the formula
    itself (short ones)."""
    name = ctx.share(text)
    return exp.column(name) if name != text else exp.Paren(this=_parsed(text).copy())


@functools.lru_cache(maxsize=1024)
def _parsed(formula: str) -> exp.Expression:
    """Formulas repeat across queries (they name only primitive ids and public bounds), and
    sqlglot's parser costs about a millisecond each: parse each text once (callers copy)."""
    return parse_one(formula, read="duckdb")


def _rewrite(node: exp.Expression, ctx: _Released) -> exp.Expression:
    """The user's expression over released values: keys become __k<i>, aggregates their
    formulas. Built anew from the original nodes (whose types and bindings are known by id)."""
    out = _rewritten(node, ctx)
    if ctx.facts is not None and id(node) in ctx.facts.booleans:  # a text code as a condition: HAVING married
        return exp.TryCast(this=out, to=exp.DataType.build("BOOLEAN"))
    return out


def _rewritten(node: exp.Expression, ctx: _Released) -> exp.Expression:
    if id(node) in ctx.aliases:  # an output's name (bind.py): the released value of that output
        return exp.column(node.name, quoted=True)
    index = matches_key(node, ctx.keys)
    if index is not None:
        key = exp.column(f"__k{index}")
        kind = ctx.key_types[index]
        return exp.TryCast(this=key, to=exp.DataType.build(kind)) if kind else key
    if is_aggregate(node):
        return _formula(node, ctx)
    target = ctx.facts.operand.get(id(node)) if ctx.facts is not None else None
    args = {}
    for name, value in node.args.items():
        if isinstance(value, exp.Expression):
            args[name] = _converted(value, _rewrite(value, ctx), target, ctx)
        elif isinstance(value, list):
            args[name] = [
                _converted(v, _rewrite(v, ctx), target, ctx) if isinstance(v, exp.Expression) else v for v in value
            ]
        else:
            args[name] = value
    return type(node)(**args)


def _converted(original: exp.Expression, out: exp.Expression, target, ctx: _Released) -> exp.Expression:
    """A released text key compared as a number (PUMS codes: HAVING sex > 2, typecheck.meet) is
    converted as render.py converts it in WHERE: by TRY_CAST, which cannot fail."""
    if target is None or target.name not in ("BIGINT", "DOUBLE", "BOOLEAN") or id(original) not in ctx.facts.types:
        return out
    if ctx.facts.of(original).type.name != "VARCHAR" or ctx.facts.of(original).constant is not None:
        return out
    return exp.TryCast(this=out, to=exp.DataType.build(target.name))


def output_sql(
    query: exp.Select,
    outputs: list,
    keys: list[exp.Expression],
    needs: dict[tuple, str],
    primitives: list[Primitive],
    columns: dict[str, Column],
    render: Render,
    round_to: int = 1,
    key_of=lambda c: c.name,
    paired: dict[str, str] | None = None,
    bias: intervals.Bias | None = None,
    aliases: frozenset[int] = frozenset(),
) -> str:
    """Post-processing over the noisy table `released`: the user's SELECT list (each value with
    the two ends of its interval, intervals.py), HAVING (as a filter on released values),
    ORDER BY and LIMIT. Runs after the noise, so it is free."""
    key_types = [temporal(k, render) for k in keys]
    ctx = _Released(
        keys, needs, columns, {p.id: p for p in primitives}, paired or {}, key_of, key_types, aliases, render.facts
    )
    bias = bias or intervals.Bias()
    items = [f"{_sql(_rewrite(expression, ctx))} AS {_q(name)}" for name, expression, _ in outputs]
    widths = [f"{_half_width_sql(column, ctx, round_to)} AS __hw_{i}" for i, (_, _, column) in enumerate(outputs)]
    ends = []
    for i, (_, expression, column) in enumerate(outputs):
        lo, hi = (None, None) if column.kind == "key" else _interval(expression, ctx, bias, round_to)
        # a suppressed cell has no interval (GREATEST and LEAST skip its NULLs and would make one up)
        for side, end in (("lo", lo), ("hi", hi)):
            end = "NULL" if end is None else f"CASE WHEN __suppressed THEN NULL ELSE {end} END"
            ends.append(f"CAST({end} AS DOUBLE) AS __{side}_{i}")
    relation = "released"
    for level in products.levels(ctx.pieces):  # named parts of intervals, each computed once
        relation = f"(SELECT *, {', '.join(f'{sql} AS {name}' for name, sql in level)} FROM {relation} AS __p)"
    sql = f"SELECT {', '.join(items + widths + ends)}, __suppressed FROM {relation}"
    if ctx.pieces:
        sql += " AS released"
    having = query.args.get("having")
    if having is not None:
        sql += f" WHERE {_sql(_rewrite(having.this, ctx))}"
    order = query.args.get("order")
    if order is not None:
        parts = []
        for ordered in order.expressions:
            direction = " DESC" if ordered.args.get("desc") else ""
            parts.append(_sql(_rewrite(ordered.this, ctx)) + direction)
        sql += " ORDER BY " + ", ".join(parts)
    for key in ("limit", "offset"):
        clause = query.args.get(key)
        if clause is not None:
            value = clause.expression if clause.expression is not None else clause.this
            sql += f" {key.upper()} {int(value.this)}"
    return sql


def _interval(expression: exp.Expression, ctx: _Released, bias: intervals.Bias, round_to: int) -> intervals.Interval:
    """The 95% interval of one output: each aggregate's (noise and estimated bias), combined by
    interval arithmetic, each of the k noisy statistics taken at 1 - 0.05 / k."""
    alpha = intervals.LEVEL / intervals.noisy_quantities(expression)
    parts: dict[int, intervals.Interval] = {}
    points: dict[int, str] = {}
    for node in expression.walk():
        index = matches_key(node, ctx.keys)
        if index is not None and not ctx.key_types[index]:
            points[id(node)] = f"__k{index}"
        elif is_aggregate(node) and not any(id(a) in parts for a in _ancestors(node)):
            parts[id(node)] = _aggregate_interval(node, ctx, bias, alpha, round_to)
    return intervals.combine(expression, parts, points)


def _ancestors(node: exp.Expression):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent


def _aggregate_interval(
    node: exp.Expression, ctx: _Released, bias: intervals.Bias, alpha: float, round_to: int
) -> intervals.Interval:
    if isinstance(node, exp.Count):
        pid = count_ref(node, ctx)
        lo, hi = intervals.count_interval(pid, ctx.by_id[pid], alpha, bias.rows_left_out, round_to)
        cap = distinct_cap(node, ctx)
        return (lo, hi) if cap is None else (intervals.at_most(lo, cap), intervals.at_most(hi, cap))
    if isinstance(node, products.PAIRED):
        return products.interval(node, ctx, lambda key: _facts(key, ctx, bias), alpha)
    value = _sql(_formula(node, ctx))
    column = ctx.key_of(node.this)
    facts = bias.columns.get(column) or intervals.ColumnFacts(tuple(float(b) for b in ctx.columns[column].bounds))
    if isinstance(node, exp.Median | exp.PercentileCont | exp.Quantile | exp.Min | exp.Max):
        q = ctx.by_id[ctx.ref("quantile", column, alpha=extremes.quantile_level(node))]
        n = ctx.by_id[ctx.ref("count", column)]
        found = intervals.quantile_interval(value, q, n, alpha, facts, share=ctx.share)
        return extremes.extreme_interval(node, found, facts.bounds) if extremes.is_extreme(node) else found
    s = ctx.by_id[ctx.ref("sum", column)]
    count = ctx.paired.get(s.id) or ctx.needs.get(("count", column, 1, None))
    if isinstance(node, exp.Sum):
        width = _sum_width(s, ctx, alpha)
        raw = s.id if s.id not in ctx.paired else ctx.plain_sum(column)  # the interval of the unclipped sum
        return intervals.sum_interval(ctx.share(raw), width, facts, count, share=ctx.share)
    n = ctx.by_id[ctx.ref("count", column)]
    if isinstance(node, exp.Avg):
        return intervals.avg_interval(value, s, n, alpha, facts, share=ctx.share)
    s2 = ctx.by_id[ctx.ref("sum", column, power=2)]
    sample = not isinstance(node, exp.VariancePop | exp.StddevPop)
    width = _sum_width(s, ctx, alpha / 3)
    lo, hi = intervals.var_interval(
        s2, ctx.plain_sum(column), width, s2.shift, n, alpha, facts, sample=sample, share=ctx.share
    )
    if isinstance(node, exp.Variance | exp.VariancePop):
        return lo, hi
    return f"SQRT({lo})", f"SQRT({hi})"


def _facts(column: str, ctx: _Released, bias: intervals.Bias) -> intervals.ColumnFacts:
    return bias.columns.get(column) or intervals.ColumnFacts(tuple(float(b) for b in ctx.columns[column].bounds))


def _sum_width(s: Primitive, ctx: _Released, alpha: float) -> float:
    """Noise half-width of SUM(x) at level alpha: a centred sum released with c x its count has
    the exact quantile of that combined noise."""
    from sandbox import privacy

    if s.id in ctx.paired:
        n = ctx.by_id[ctx.paired[s.id]]
        return privacy.combined_half_width(s.scale, n.scale, abs(s.center), alpha) * s.step
    return privacy.half_width(s.scale, alpha) * s.step


def half_width(column, by_id: dict[str, Primitive], round_to: int) -> float | None:
    """95% half-width of a COUNT or SUM cell, which does not depend on the data (None for other
    functions). COUNT/SUM: exact quantile of the discrete Laplace noise (plus half a rounding
    step); a SUM released as centred sum + c x count: the exact quantile of that combined noise."""
    from sandbox import privacy

    if column.function not in ("count", "sum"):
        return None
    p = by_id[column.primitives[0]]
    if len(column.primitives) == 2:  # centred sum + c x count (never with rounded counts)
        n = by_id[column.primitives[1]]
        assert round_to == 1, "a rounded count is never paired with a released sum"
        return privacy.combined_half_width(p.scale, n.scale, abs(p.center)) * p.step
    width = privacy.half_width(p.scale) * p.step
    if p.kind != "sum" and round_to > 1:
        width += round_to / 2
    return width


def _half_width_sql(column, ctx: _Released, round_to: int) -> str:
    """95% interval half-width of one output cell, from public scales and released values only.
    COUNT and SUM: see half_width. AVG: union bound over its noisy (centred) SUM and COUNT
    (97.5% each): with v = sum / count the released mean's deviation from the centre,
    |error| <= (w_sum + |v| w_count) / (count - w_count). Others: NULL (documented)."""
    from sandbox import privacy

    width = half_width(column, ctx.by_id, round_to)
    if width is not None:
        return f"CAST({width!r} AS DOUBLE)"
    if column.function == "avg":
        s, n = ctx.by_id[column.primitives[0]], ctx.by_id[column.primitives[1]]
        lo, hi = ctx.columns[s.column].bounds
        ws = privacy.half_width(s.scale, 0.025) * s.step
        wn = privacy.half_width(n.scale, 0.025)
        # |v - c| of the unclamped released mean v = c + sum / count: clamping to the bounds only
        # moves the value towards the truth, so the interval stays valid (and the SQL short)
        deviation = f"ABS({s.id} / GREATEST({n.id}, 1))"
        return f"CAST(LEAST(({ws!r} + {deviation} * {wn!r}) / GREATEST({n.id} - {wn!r}, 1), {_num(hi - lo)}) AS DOUBLE)"
    return "CAST(NULL AS DOUBLE)"
