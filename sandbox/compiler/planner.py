"""Validated query -> Plan: which noisy primitives, with which sensitivity and epsilon share,
over which bounded rows, and how the user's SELECT list is computed from them afterwards.

Sensitivity (user-level: a neighbour adds or removes all rows of one unit). After bounding, a
unit has at most m = max_rows rows, spread over at most l0 groups. Then, for the vector of one
primitive over all groups:
- COUNT(*) / COUNT(col): L1 <= m (each row lands in one group);
- COUNT(DISTINCT unit):  L1 <= l0 (one per group the unit reaches);
- SUM of a value quantized to integers q in [q_lo, q_hi]: L1 <= m * max(|q_lo|, |q_hi|);
- a quantile per group: the exponential mechanism's privacy loss is linear in the number of
  changed rows, and those add up to <= m over all groups, so each group uses d_in = m.
l0 = 1 when every key is a dimension verified constant within a unit, else min(max_groups, m);
when max_groups < m a per-query pass keeps each unit's first max_groups groups.

Epsilon split (basic composition): the query's epsilon is divided equally among the noisy
primitives it needs (AVG = SUM + COUNT(col), VAR/STDDEV = SUM of squares + SUM + COUNT(col),
shared when two aggregates need the same one, plus the selection count for private keys and
the suppression count for min_count when the query has none). Delta goes to private partition
selection only; a query over public keys charges delta = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlglot import exp

from sandbox import privacy
from sandbox.catalog import Dataset
from sandbox.compiler import keys as key_sets
from sandbox.compiler.plan import OutputColumn, OutputRules, Plan, Primitive, Selection
from sandbox.compiler.shape import matches_key, unqualified
from sandbox.compiler.vocabulary import is_aggregate
from sandbox.policy import Column
from sandbox.privacy.grid import clamp_bounds, grid_step

__all__ = ["build_plan"]

MAX_CANDIDATES = 1001  # quantile grid points over [lo, hi]
I64_HEADROOM = 2**62


@dataclass
class _Need:
    kind: str
    column: str | None = None
    power: int = 1
    alpha: float | None = None

    def key(self) -> tuple:
        return (self.kind, self.column, self.power, self.alpha)


@dataclass
class _Builder:
    dataset: Dataset
    needs: dict[tuple, str] = field(default_factory=dict)
    order: list[_Need] = field(default_factory=list)
    internal: set[str] = field(default_factory=set)

    def need(self, need: _Need, *, internal: bool = False) -> str:
        key = need.key()
        if key not in self.needs:
            self.needs[key] = f"p{len(self.order)}"
            self.order.append(need)
            if internal:
                self.internal.add(self.needs[key])
        elif not internal:
            self.internal.discard(self.needs[key])
        return self.needs[key]


def build_plan(
    query: exp.Select,
    group_keys: list[exp.Expression],
    dataset: Dataset,
    sql: str,
    epsilon: float,
    delta: float | None,
    rules: OutputRules,
) -> Plan:
    policy = dataset.policy
    min_count = max(policy.limits.min_count, rules.min_count)
    round_to = math.lcm(policy.limits.round_to, rules.round_to)
    unit = policy.unit
    m = policy.privacy_unit.max_rows
    max_groups = policy.privacy_unit.max_groups
    keys = [unqualified(k) for k in group_keys]
    key_columns = {c.name for k in keys for c in k.find_all(exp.Column)}
    constant_keys = key_columns <= dataset.constant_dimensions
    if not keys:
        l0 = 1
    elif constant_keys:
        l0 = 1
    else:
        l0 = min(max_groups, m)
    groups_pass = bool(keys) and not constant_keys and max_groups < m
    bounding = dataset.max_rows_per_unit > m and not dataset.prebounded  # else a verified no-op

    builder = _Builder(dataset)
    outputs: list[tuple[str, exp.Expression, OutputColumn]] = []
    for index, item in enumerate(query.expressions):
        name = _output_name(item, index)
        expression = unqualified(item.unalias())
        key_index = matches_key(expression, keys)
        if key_index is not None:
            outputs.append((name, expression, OutputColumn(name, "key")))
            continue
        function, prims = None, ()
        if is_aggregate(expression):
            function, prims = _describe(expression, builder, policy.columns, unit)
        else:
            for node in expression.find_all(exp.Expression):
                if is_aggregate(node):
                    _describe(node, builder, policy.columns, unit)
        kind = "aggregate" if function else "derived"
        outputs.append((name, expression, OutputColumn(name, kind, function, prims)))

    public = key_sets.public_key_set(keys, policy) if keys else None
    selection_pid = None
    if keys and public is None:
        selection_pid = builder.need(_Need("units" if m > 1 else "count"), internal=True)
    suppress_pid = None
    if min_count > 0:
        suppress_pid = _first_count(builder) or builder.need(_Need("count"), internal=True)

    count = len(builder.order)
    share = epsilon / count
    delta_used = 0.0
    primitives = []
    selection = None
    for need in builder.order:
        pid = builder.needs[need.key()]
        primitives.append(_primitive(pid, need, policy.columns, m, l0, share, dataset, pid in builder.internal))
    if selection_pid is not None:
        delta_used = policy.default_delta if delta is None else delta
        prim = next(p for p in primitives if p.id == selection_pid)
        linf = 1 if prim.kind == "units" else m
        l1 = l0 * linf if prim.kind == "units" else m
        scale, threshold = privacy.threshold_parameters(l0=l0, l1=l1, linf=linf, epsilon=share, delta=delta_used)
        selection = Selection(selection_pid, l0, l1, linf, share, delta_used, scale, threshold)

    from sandbox.compiler import generate

    relation = generate.bounded_relation(
        dataset,
        query.args.get("where"),
        keys,
        unit=unit,
        max_rows=m,
        bounding=bounding,
        groups_pass=groups_pass,
        max_groups=max_groups,
    )
    plan_outputs = tuple(_with_half_width(o, primitives) for _, _, o in outputs)
    notes = []
    if bounding:
        notes.append(f"each {unit} contributes at most {m} rows, chosen by a keyed hash at registration")
    if groups_pass:
        notes.append(f"each {unit} contributes to at most {max_groups} groups")
    return Plan(
        sql=sql,
        normalized_sql=query.sql(dialect="duckdb", normalize=True, comments=False),
        dataset=dataset.name,
        attach={dataset.name: str(dataset.engine_path)},
        epsilon=epsilon,
        delta=delta_used,
        aggregate_sql=generate.aggregate_sql(relation, keys, primitives, unit=unit, dataset=dataset),
        histogram_sql={p.id: generate.histogram_sql(relation, keys, p) for p in primitives if p.kind == "quantile"},
        key_names=tuple(f"__k{i}" for i in range(len(keys))),
        public_keys=public,
        primitives=tuple(primitives),
        selection=selection,
        suppress_by=suppress_pid,
        min_count=min_count,
        round_to=round_to,
        output_sql=generate.output_sql(query, outputs, keys, builder.needs, primitives, policy.columns, round_to),
        outputs=plan_outputs,
        max_rows=m,
        columns=tuple(sorted({c.name for c in query.find_all(exp.Column) if c.name in policy.columns})),
        notes=tuple(notes),
    )


def _output_name(item: exp.Expression, index: int) -> str:
    if item.alias:
        return item.alias
    if isinstance(item, exp.Column):
        return item.name
    return item.sql(dialect="duckdb")


def _first_count(builder: _Builder) -> str | None:
    for need in builder.order:
        if need.kind in ("count", "units") and need.column is None:
            return builder.needs[need.key()]
    return None


def _describe(node: exp.Expression, builder: _Builder, columns: dict[str, Column], unit: str):
    """Register the primitives an aggregate needs; return its function name and their ids."""
    if isinstance(node, exp.Count):
        inner = node.this
        if isinstance(inner, exp.Star):
            return "count", (builder.need(_Need("count")),)
        if isinstance(inner, exp.Distinct):
            return "count", (builder.need(_Need("units")),)
        return "count", (builder.need(_Need("count", inner.name)),)
    column = node.this.name
    if isinstance(node, exp.Sum):
        return "sum", (builder.need(_Need("sum", column)),)
    if isinstance(node, exp.Avg):
        return "avg", (builder.need(_Need("sum", column)), builder.need(_Need("count", column)))
    if isinstance(node, exp.Variance | exp.VariancePop | exp.Stddev | exp.StddevSamp | exp.StddevPop):
        prims = (
            builder.need(_Need("sum", column, power=2)),
            builder.need(_Need("sum", column)),
            builder.need(_Need("count", column)),
        )
        return ("stddev" if isinstance(node, exp.Stddev | exp.StddevSamp | exp.StddevPop) else "var"), prims
    alpha = 0.5 if isinstance(node, exp.Median) else float(node.expression.this)
    return "quantile", (builder.need(_Need("quantile", column, alpha=alpha)),)


def _primitive(
    pid: str,
    need: _Need,
    columns: dict[str, Column],
    m: int,
    l0: int,
    epsilon: float,
    dataset: Dataset,
    internal: bool,
) -> Primitive:
    if need.kind == "count":
        return Primitive(pid, "count", need.column, m, epsilon, privacy.laplace_scale(m, epsilon), internal=internal)
    if need.kind == "units":
        return Primitive(pid, "units", None, l0, epsilon, privacy.laplace_scale(l0, epsilon), internal=internal)
    column = columns[need.column]
    lo, hi = clamp_bounds(column)
    if need.kind == "quantile":
        if column.is_integer and hi - lo + 1 <= MAX_CANDIDATES:
            candidates, step = int(hi - lo + 1), 1.0
        else:
            candidates, step = MAX_CANDIDATES, (hi - lo) / (MAX_CANDIDATES - 1)
        scale = privacy.quantile_scale(candidates, need.alpha, d_in=m, epsilon=epsilon)
        return Primitive(
            pid,
            "quantile",
            need.column,
            m,
            epsilon,
            scale,
            alpha=need.alpha,
            step=step,
            lo=lo,
            hi=hi,
            candidates=candidates,
            internal=internal,
        )
    # sum of t(x) = clamp(x)**power on an integer grid of `step`
    t_lo, t_hi = (
        (lo, hi) if need.power == 1 else (0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi), max(lo * lo, hi * hi))
    )
    step = grid_step(column, need.power)
    q_max = max(abs(round(t_lo / step)), abs(round(t_hi / step)))
    if dataset.rows * q_max >= I64_HEADROOM:
        raise OverflowError(f"{dataset.name}: {dataset.rows} rows x {q_max} could overflow a 64-bit sum")
    sensitivity = m * q_max
    return Primitive(
        pid,
        "sum",
        need.column,
        sensitivity,
        epsilon,
        privacy.laplace_scale(sensitivity, epsilon),
        power=need.power,
        step=step,
        lo=lo,
        hi=hi,
        internal=internal,
    )


def _with_half_width(column: OutputColumn, primitives: list[Primitive]) -> OutputColumn:
    if column.function not in ("count", "sum"):
        return column
    prim = next(p for p in primitives if p.id == column.primitives[0])
    width = privacy.half_width(prim.scale) * prim.step
    return OutputColumn(column.name, column.kind, column.function, column.primitives, width)
