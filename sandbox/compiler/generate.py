"""Generate the only SQL DuckDB will run: bounded aggregation over the attached dataset, the
quantile histograms, and the post-processing over the *noisy* released table. User expressions
enter only as sqlglot ASTs that passed validation, regenerated here."""

from __future__ import annotations

from sqlglot import exp

from sandbox.catalog import QUANTIZED_PREFIX, RANK_COLUMN, Dataset
from sandbox.compiler.plan import Primitive
from sandbox.compiler.shape import matches_key
from sandbox.compiler.vocabulary import is_aggregate
from sandbox.policy import Column

__all__ = ["aggregate_sql", "bounded_relation", "histogram_sql", "output_sql"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb")


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def bounded_relation(
    dataset: Dataset,
    where: exp.Where | None,
    keys: list[exp.Expression],
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
        conditions.append(f"({_sql(where.this)})")
    relation = f"SELECT * FROM {_q(dataset.name)}.main.data"
    if conditions:
        relation += " WHERE " + " AND ".join(conditions)
    if groups_pass:
        # Keep each unit's first max_groups groups, ordered by the group's lowest keyed rank:
        # uniform and secret-keyed like the row choice, with no secret in the SQL.
        key_list = ", ".join(_sql(k) for k in keys)
        relation = (
            "SELECT * FROM (SELECT *, dense_rank() OVER (PARTITION BY "
            f"{_q(unit)} ORDER BY __group_rank) AS __group_index FROM (SELECT *, min({RANK_COLUMN}) "
            f"OVER (PARTITION BY {_q(unit)}, {key_list}) AS __group_rank FROM ({relation}) AS r) AS g) "
            f"AS h WHERE __group_index <= {max_groups}"
        )
    return relation


def _clamped(p: Primitive) -> str:
    value = f"LEAST(GREATEST(CAST({_q(p.column)} AS DOUBLE), {_num(p.lo)}), {_num(p.hi)})"
    return value if p.power == 1 else f"({value} * {value})"


def _primitive_sql(p: Primitive, unit_column: str, dataset: Dataset) -> str:
    if p.kind == "count":
        return "COUNT(*)" if p.column is None else f"COUNT({_q(p.column)})"
    if p.kind == "units":
        return f"COUNT(DISTINCT {_q(unit_column)})"
    if p.kind == "sum":
        # Exact integer sum of quantized values: order-independent, overflow ruled out by plan.
        if p.power == 1 and dataset.quantized_step(p.column) == p.step:
            return f"CAST(COALESCE(SUM({_q(QUANTIZED_PREFIX + p.column)}), 0) AS BIGINT)"  # stored at registration
        return f"CAST(COALESCE(SUM(CAST(ROUND({_clamped(p)} / {_num(p.step)}) AS BIGINT)), 0) AS BIGINT)"
    raise ValueError(p.kind)


def aggregate_sql(
    relation: str,
    keys: list[exp.Expression],
    primitives: list[Primitive],
    *,
    unit: str,
    dataset: Dataset,
) -> str:
    columns = [f"{_sql(k)} AS __k{i}" for i, k in enumerate(keys)]
    columns += [f"{_primitive_sql(p, unit, dataset)} AS {p.id}" for p in primitives if p.kind != "quantile"]
    if len(columns) == len(keys):
        columns.append("COUNT(*) AS __rows")
    sql = f"SELECT {', '.join(columns)} FROM ({relation}) AS b"
    if keys:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(keys)))
    return sql


def histogram_sql(relation: str, keys: list[exp.Expression], p: Primitive) -> str:
    """Counts per candidate of the clamped values snapped to the candidate grid; only these
    counts (never values) reach the exponential mechanism, inside the worker."""
    bin_sql = f"CAST(ROUND(({_clamped(p)} - {_num(p.lo)}) / {_num(p.step)}) AS INTEGER)"
    columns = [f"{_sql(k)} AS __k{i}" for i, k in enumerate(keys)]
    group = ", ".join(str(i + 1) for i in range(len(keys) + 1))
    return (
        f"SELECT {', '.join(columns + [f'{bin_sql} AS __bin', 'COUNT(*) AS __n'])} "
        f"FROM ({relation}) AS b WHERE {_q(p.column)} IS NOT NULL GROUP BY {group}"
    )


def _formula(node: exp.Expression, needs: dict[tuple, str], columns: dict[str, Column]) -> exp.Expression:
    """An aggregate of the user's query, as arithmetic over released (noisy) primitives."""

    def ref(kind: str, column: str | None = None, power: int = 1, alpha: float | None = None) -> str:
        return needs[(kind, column, power, alpha)]

    if isinstance(node, exp.Count):
        inner = node.this
        if isinstance(inner, exp.Star):
            text = ref("count")
        elif isinstance(inner, exp.Distinct):
            text = ref("units")
        else:
            text = ref("count", inner.name)
        return exp.column(text)
    column = node.this.name
    lo, hi = columns[column].bounds
    if isinstance(node, exp.Median | exp.PercentileCont | exp.Quantile):
        alpha = 0.5 if isinstance(node, exp.Median) else float(node.expression.this)
        return exp.column(ref("quantile", column, alpha=alpha))
    s = ref("sum", column)
    if isinstance(node, exp.Sum):
        return exp.column(s)
    n = ref("count", column)
    if isinstance(node, exp.Avg):
        text = f"LEAST(GREATEST({s} / GREATEST({n}, 1), {_num(lo)}), {_num(hi)})"
    else:
        s2 = ref("sum", column, power=2)
        denominator = (
            f"GREATEST({n}, 1)" if isinstance(node, exp.VariancePop | exp.StddevPop) else f"GREATEST({n} - 1, 1)"
        )
        variance = (
            f"LEAST(GREATEST(({s2} - {s} * {s} / GREATEST({n}, 1)) / {denominator}, 0), {_num((hi - lo) ** 2 / 4)})"
        )
        text = variance if isinstance(node, exp.Variance | exp.VariancePop) else f"SQRT({variance})"
    from sqlglot import parse_one

    return exp.Paren(this=parse_one(text, read="duckdb"))


def _rewrite(
    node: exp.Expression, keys: list[exp.Expression], needs: dict[tuple, str], columns: dict[str, Column]
) -> exp.Expression:
    index = matches_key(node, keys)
    if index is not None:
        return exp.column(f"__k{index}")
    if is_aggregate(node):
        return _formula(node, needs, columns)
    node = node.copy()
    for name, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(name, _rewrite(value, keys, needs, columns))
        elif isinstance(value, list):
            node.set(name, [_rewrite(v, keys, needs, columns) if isinstance(v, exp.Expression) else v for v in value])
    return node


def output_sql(
    query: exp.Select,
    outputs: list,
    keys: list[exp.Expression],
    needs: dict[tuple, str],
    primitives: list[Primitive],
    columns: dict[str, Column],
    round_to: int = 1,
) -> str:
    """Post-processing over the noisy table `released`: the user's SELECT list, HAVING (as a
    filter on released values), ORDER BY and LIMIT. Runs after the noise, so it is free."""
    items = [f"{_sql(_rewrite(expression, keys, needs, columns))} AS {_q(name)}" for name, expression, _ in outputs]
    by_id = {p.id: p for p in primitives}
    widths = [
        f"{_half_width_sql(column, expression, by_id, keys, needs, columns, round_to)} AS __hw_{i}"
        for i, (_, expression, column) in enumerate(outputs)
    ]
    sql = f"SELECT {', '.join(items + widths)}, __suppressed FROM released"
    having = query.args.get("having")
    if having is not None:
        sql += f" WHERE {_sql(_rewrite(having.this, keys, needs, columns))}"
    order = query.args.get("order")
    if order is not None:
        parts = []
        for ordered in order.expressions:
            rewritten = _rewrite(ordered.this, keys, needs, columns)
            direction = " DESC" if ordered.args.get("desc") else ""
            parts.append(_sql(rewritten) + direction)
        sql += " ORDER BY " + ", ".join(parts)
    for key in ("limit", "offset"):
        clause = query.args.get(key)
        if clause is not None:
            value = clause.expression if clause.expression is not None else clause.this
            sql += f" {key.upper()} {int(value.this)}"
    return sql


def _half_width_sql(
    column,
    expression: exp.Expression,
    by_id: dict[str, Primitive],
    keys: list[exp.Expression],
    needs: dict[tuple, str],
    columns: dict[str, Column],
    round_to: int,
) -> str:
    """95% interval half-width of one output cell, from public scales and released values only.
    COUNT and SUM: exact quantile of discrete Laplace noise (plus half a rounding step).
    AVG: union bound over its noisy SUM and COUNT (97.5% each). Others: NULL (documented)."""
    from sandbox import privacy

    if column.function in ("count", "sum"):
        p = by_id[column.primitives[0]]
        width = privacy.half_width(p.scale) * p.step
        if p.kind != "sum" and round_to > 1:
            width += round_to / 2
        return f"CAST({width!r} AS DOUBLE)"
    if column.function == "avg":
        s, n = by_id[column.primitives[0]], by_id[column.primitives[1]]
        lo, hi = columns[s.column].bounds
        ws = privacy.half_width(s.scale, 0.025) * s.step
        wn = privacy.half_width(n.scale, 0.025)
        value = _sql(_rewrite(expression, keys, needs, columns))
        return (
            f"CAST(LEAST(({ws!r} + ABS({value}) * {wn!r}) / GREATEST({n.id} - {wn!r}, 1), {_num(hi - lo)}) AS DOUBLE)"
        )
    return "CAST(NULL AS DOUBLE)"
