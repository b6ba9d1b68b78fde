"""Validated query -> Plan: which noisy primitives, with which sensitivity and epsilon share,
over which bounded rows, and how the user's SELECT list is computed from them afterwards.

Sensitivity (user-level: a neighbour adds or removes all rows of one unit). After bounding, a
unit has at most m = max_rows rows, spread over at most l0 groups. Then, for the vector of one
primitive over all groups:
- COUNT(*) / COUNT(col): L1 <= m (each row lands in one group);
- COUNT(DISTINCT unit):  L1 <= l0 (one per group the unit reaches);
- COUNT(DISTINCT col) of another column: L1 <= m (a value leaves or joins a group's distinct set
  only with one of the unit's rows), and <= l0 when the column is constant within a unit (one
  value per group it reaches: a declared constant dimension, or any column at max_rows 1);
- SUM of a value quantized to integers q in [q_lo, q_hi]: L1 <= m * max(|q_lo|, |q_hi|);
  when the query releases the count of the same values anyway (AVG, COUNT(x), or COUNT(*) of a
  column verified non-null), the sum is of q - c instead, c the middle of [q_lo, q_hi]:
  L1 <= m * (q_hi - q_lo) / 2, half as much on [0, hi]; then AVG = c + SUM(q - c) / COUNT and
  SUM = SUM(q - c) + c * COUNT (post-processing; the interval is the exact one of that sum);
- a quantile per group: the exponential mechanism's privacy loss is linear in the number of
  changed rows, and those add up to <= m over all groups, so each group uses d_in = m.
l0 = 1 when every key is a dimension verified constant within a unit, else min(max_groups, m);
when max_groups < m a per-query pass keeps each unit's first max_groups groups.

Epsilon split (basic composition): the query's epsilon is divided equally among the noisy
primitives it needs (AVG = SUM + COUNT(col), VAR/STDDEV = SUM of squares + SUM + COUNT(col),
shared when two aggregates need the same one, plus the selection count for private keys and
the suppression count for min_count when the query has none; the count a quantile's interval
alone needs gets a quarter share). Delta goes to private partition
selection only; a query over public keys charges delta = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlglot import exp

from sandbox import metadata, privacy
from sandbox.compiler import bounds, extremes, intervals, products, work
from sandbox.compiler import keys as key_sets
from sandbox.compiler.contribution import Contribution
from sandbox.compiler.plan import OutputColumn, OutputRules, Plan, Primitive, Selection
from sandbox.compiler.render import Renderer
from sandbox.compiler.scope import Bound
from sandbox.compiler.shape import matches_key
from sandbox.compiler.vocabulary import is_aggregate
from sandbox.errors import InvalidParameter, SQLRejected
from sandbox.notes import Note, note
from sandbox.policy import Column
from sandbox.privacy.grid import center_units, clamp_bounds, grid_step, quantize, step_for

__all__ = ["build_plan"]

MAX_CANDIDATES = 1001  # quantile grid points over [lo, hi]
INTERVAL_COUNT_WEIGHT = 0.25  # epsilon share of a count only a quantile's interval needs, against 1


@dataclass
class _Need:
    kind: str
    column: str | None = None
    power: int = 1
    alpha: float | None = None
    other: str | None = None  # a moment's second column and (power of column, power of other)
    powers: tuple[int, int] | None = None

    def key(self) -> tuple:
        base = (self.kind, self.column, self.power, self.alpha)
        return base if self.other is None else (*base, self.other, self.powers)


@dataclass
class _Builder:
    needs: dict[tuple, str] = field(default_factory=dict)
    order: list[_Need] = field(default_factory=list)
    internal: set[str] = field(default_factory=set)
    never_null: set[str] = field(default_factory=set)  # columns (and expressions) whose COUNT(x) is COUNT(*)
    is_unit: Callable[[exp.Expression], bool] = lambda node: False  # COUNT(DISTINCT it) counts units
    counted_by: dict[str, str] = field(default_factory=dict)  # count id -> quantile whose histogram totals it

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
    bound: Bound,
    sql: str,
    epsilon: float,
    delta: float | None,
    rules: OutputRules,
    memory_mb: int = work.DEFAULT_MEMORY_MB,
    contribution: Contribution | None = None,
) -> Plan:
    contribution = contribution or Contribution()
    scope = bound.scope
    render = Renderer(bound.facts)
    policies = [d.policy for d in scope.datasets()]
    private = [p for p in policies if not p.public]
    min_count = max([rules.min_count, *(p.limits.min_count for p in policies)])
    round_to = math.lcm(rules.round_to, *(p.limits.round_to for p in policies))
    default_delta = min(p.default_delta for p in private)
    unit_relation = scope.unit_relation
    m, max_groups = scope.max_rows, scope.max_groups
    if contribution.max_groups is not None:
        max_groups = min(max_groups, contribution.max_groups)
    keys = list(group_keys)
    key_columns = [c for k in keys for c in k.find_all(exp.Column)]
    constant_keys = all((r := bound.ref(c)) is not None and r[0].private and r[1] in r[0].constant for c in key_columns)
    l0 = 1 if not keys or constant_keys else min(max_groups, m)

    columns: dict[str, Column] = {}  # primitive column key -> policy column (bounds, type)
    origins: dict[str, tuple] = {}  # primitive column key -> (relation, output name)
    expressions: dict[str, exp.Expression] = {}  # primitive column key -> an aggregated expression
    # COUNT(x) of a column declared and verified non-null is COUNT(*): one noisy count, not two.
    # Only on one dataset: a join or pre-aggregation can produce NULLs the data does not have.
    non_null = frozenset() if scope.fused else scope.base.dataset.non_null_columns
    builder = _Builder(never_null=set(non_null), is_unit=bound.is_unit)

    def key_of(node: exp.Expression) -> str:
        """The primitive column key of an aggregate's argument: a column's (qualified) name, or
        an expression's text, which stands for a column with the expression's derived bounds."""
        column = bounds.plain_column(node)
        if column is None:
            key = node.sql(dialect="duckdb")
            if key not in columns:
                columns[key] = bounds.expression_column(node, bound)
                expressions[key] = node
                if bounds.never_null(node, bound, non_null):
                    builder.never_null.add(key)
            return key
        relation, name = bound.ref(column)
        key = f"{relation.alias}.{name}" if scope.fused else name
        columns[key] = relation.outputs[name].column
        origins[key] = (relation, name)
        return key

    outputs: list[tuple[str, exp.Expression, OutputColumn]] = []
    for index, item in enumerate(query.expressions):
        name = _output_name(item, index)
        expression = item.unalias()
        if matches_key(expression, keys) is not None:
            outputs.append((name, expression, OutputColumn(name, "key")))
            continue
        function, prims = None, ()
        if is_aggregate(expression):
            function, prims = _describe(expression, builder, key_of)
        else:
            for node in expression.find_all(exp.Expression):
                if is_aggregate(node):
                    _describe(node, builder, key_of)
        kind = "aggregate" if function else "derived"
        outputs.append((name, expression, OutputColumn(name, kind, function, prims)))

    # a column constant within a unit gives it one value: one distinct value per group it reaches
    per_unit = frozenset(key for key, (rel, name) in origins.items() if rel.private and name in rel.constant)
    public = key_sets.public_key_set(keys, bound) if keys else None
    # Only a count of distinct units and the release of private keys depend on how many groups a
    # unit is in (l0). Counts, sums and quantiles over public keys are bounded by the unit's rows
    # across all groups together (L1 <= m x the value bound), so capping groups there would only
    # drop rows: no groups pass.
    groups_pass = (
        bool(keys)
        and not constant_keys
        and max_groups < m
        and (public is None or any(_per_group(n, per_unit) for n in builder.order))
    )
    # Keys alone (`SELECT educ FROM t GROUP BY educ`): private keys cost the selection count; a
    # public key set is the policy's, released as declared, with nothing noisy to compute
    public_keys_only = bool(keys) and public is not None and not builder.order
    selection_pid = None
    if keys and public is None:
        selection_pid = builder.need(_Need("units" if m > 1 else "count"), internal=True)
    suppress_pid = None
    if min_count > 0 and not public_keys_only:
        suppress_pid = _first_count(builder) or builder.need(_Need("count"), internal=True)

    paired = _pair_sums_with_counts(builder, query, key_of, exclude=selection_pid, rounded=round_to > 1)
    # A count only a quantile's interval needs gets a quarter share: it turns a rank error into a
    # share of the count, for which a rough count does, and the quantile keeps most of the epsilon.
    interval_only = {
        pid for pid in builder.counted_by if pid in builder.internal and pid not in (selection_pid, suppress_pid)
    }
    weights = {
        n.key(): INTERVAL_COUNT_WEIGHT if builder.needs[n.key()] in interval_only else 1.0 for n in builder.order
    }
    share = epsilon / max(sum(weights.values()), 1.0)  # a full share
    primitives = [
        _primitive(
            builder.needs[n.key()],
            n,
            columns,
            m,
            l0,
            share * weights[n.key()],
            builder.needs[n.key()] in builder.internal,
            centered=builder.needs[n.key()] in paired,
            per_unit=per_unit,
        )
        for n in builder.order
    ]
    if selection_pid is None:  # a count a histogram already totals needs no aggregate scan
        primitives = [
            replace(p, from_histogram=builder.counted_by[p.id]) if p.id in builder.counted_by else p for p in primitives
        ]
    outputs = [(name, expression, _with_count(column, paired)) for name, expression, column in outputs]
    notes: list[Note] = []
    if public_keys_only:
        notes.append(note("public_keys_only"))
    if any(extremes.is_extreme(n) for item in query.expressions for n in item.walk()):
        notes.append(note("extremes"))
    delta_used, selection = 0.0, None
    if selection_pid is not None:
        delta_used = default_delta if delta is None else delta
        prim = next(p for p in primitives if p.id == selection_pid)
        linf = 1 if prim.kind == "units" else m
        l1 = l0 * linf if prim.kind == "units" else m
        try:
            scale, threshold = privacy.threshold_parameters(l0=l0, l1=l1, linf=linf, epsilon=share, delta=delta_used)
        except ValueError:
            raise InvalidParameter(
                f"delta {delta_used:g} with epsilon {epsilon:g} is outside what the release of private keys can "
                "certify (OpenDP's accounting works down to a delta of about 1e-15 per group, and the threshold "
                "a group must pass has to stay below 2**53). Nothing was charged. Use a larger delta, e.g. the "
                f"dataset's default {default_delta:g}, or a larger epsilon.",
                parameter="delta",
            ) from None
        selection = Selection(selection_pid, l0, l1, linf, share, delta_used, scale, threshold)
        counted = "units" if prim.kind == "units" else "rows"
        notes.append(note(f"private_keys.{counted}", threshold=threshold, unit=unit_relation.unit))

    _check_work(bound, keys, public, primitives, groups_pass, memory_mb)

    from sandbox.compiler import generate

    where = query.args.get("where")
    values = {key: render.sql(node) for key, node in expressions.items()}  # each expression's SQL on a row
    if scope.fused:
        # Private relations are capped before the join; only a public table whose joined value
        # repeats can multiply a unit's rows beyond their product.
        capped = any(_fan_out(bound, join) > 1 for join in scope.joins if join.relation.kind == "public")
        relation, colmap = generate.fused_rows(
            scope,
            where,
            keys,
            primitives,
            render,
            m=m,
            cap=capped,
            groups_pass=groups_pass,
            max_groups=max_groups,
            values=values,
        )
        unit = "__unit"
        aggregate = generate.aggregate_sql(relation, keys, primitives, render, unit=unit, colmap=colmap)
        histograms = {
            p.id: generate.histogram_sql(relation, keys, p, render, colmap) for p in primitives if p.kind == "quantile"
        }
        caps = " × ".join(f"{r.max_rows} ({r.dataset.name})" for r in scope.relations if r.kind == "private")
        if caps:  # a pre-aggregation alone is fused too, but caps nothing: one row per unit
            notes.append(note("joined_rows", unit=unit_relation.unit, rows=m, caps=caps))
    else:
        dataset = scope.base.dataset
        bounding = m < generate._stored_rows(dataset)  # the engine file already holds at most its ceiling
        relation = generate.bounded_relation(
            dataset,
            where,
            keys,
            render,
            unit=unit_relation.unit,
            max_rows=m,
            bounding=bounding,
            groups_pass=groups_pass,
            max_groups=max_groups,
        )
        aggregate = generate.aggregate_sql(
            relation, keys, primitives, render, unit=unit_relation.unit, dataset=dataset, values=values
        )
        histograms = {
            p.id: generate.histogram_sql(relation, keys, p, render, dataset=dataset, values=values)
            for p in primitives
            if p.kind == "quantile"
        }
        if bounding:
            notes.append(note("rows", unit=unit_relation.unit, rows=m))
    inputs = {key: [bound.ref(c) for c in bounds.value_columns(node)] for key, node in expressions.items()}
    linear = {}  # an expression a * x + b: x's clamping facts carry over to it
    for key, node in expressions.items():
        found = bounds.affine(node, bound)
        if found is not None:
            linear[key] = (found[0], found[1], bound.ref(found[2]))
    bias, bias_facts, bias_notes = _bias(scope, origins, columns, groups_pass, max_groups, inputs, linear)
    choices = _choices(scope, share)
    if primitives:  # with nothing noisy, nothing is left out of a figure
        notes.extend(bias_notes)
    else:
        notes = [n for n in notes if n.key == "public_keys_only"]
    touched = bound.reads()
    return Plan(
        sql=sql,
        normalized_sql=query.sql(dialect="duckdb", normalize=True, comments=False),
        dataset=unit_relation.dataset.name,
        attach={d.name: str(d.engine_path) for d in scope.datasets()},
        epsilon=epsilon if primitives else 0.0,  # nothing noisy: public keys alone cost nothing
        delta=delta_used,
        aggregate_sql=aggregate,
        histogram_sql=histograms,
        key_names=tuple(f"__k{i}" for i in range(len(keys))),
        public_keys=public,
        primitives=tuple(primitives),
        selection=selection,
        suppress_by=suppress_pid,
        min_count=min_count,
        round_to=round_to,
        output_sql=generate.output_sql(
            query, outputs, keys, builder.needs, primitives, columns, render, round_to, key_of, paired, bias,
            aliases=_alias_refs(query, bound),
        ),
        outputs=tuple(_with_half_width(o, primitives, round_to) for _, _, o in outputs),
        max_rows=m,
        scope={name: tuple(sorted(cols)) for name, cols in touched.items()},
        notes=tuple(notes),
        bias=tuple(bias_facts),
        choices=tuple(choices),
    )


def _alias_refs(query: exp.Select, bound: Bound) -> frozenset[int]:
    """HAVING / ORDER BY names that refer to an output (bind.py left them unbound): they must
    not be read as the group key a column of the same name would be."""
    found = set()
    for clause in (query.args.get("having"), query.args.get("order")):
        if clause is not None:
            found |= {id(c) for c in clause.find_all(exp.Column) if not c.table and bound.ref(c) is None}
    return frozenset(found)


def _check_work(bound: Bound, keys, public, primitives, groups_pass: bool, memory_mb: int) -> None:
    """Refuse, before any data is read, a query whose worst case does not fit the worker."""
    scope = bound.scope
    text_keys = sum(1 for k in keys if bound.typed(k).type.name == "VARCHAR")
    projected = len({p.column for p in primitives if p.column}) + len(keys)
    if not scope.fused:
        projected = len(scope.base.outputs) + len(keys)  # the max_groups pass keeps whole rows
    need = work.estimate(
        scope,
        keys=len(keys),
        text_keys=text_keys,
        public_groups=len(public) if public is not None else None,
        primitives=sum(1 for p in primitives if p.kind != "quantile"),
        histograms=sum(1 for p in primitives if p.kind == "quantile"),
        projected=projected,
        # a window pass holds every row: the max_groups pass, or the cap a repeating public key needs
        windows=groups_pass or any(_fan_out(bound, j) > 1 for j in scope.joins if j.relation.kind == "public"),
        fan_out=[_fan_out(bound, join) for join in scope.joins],
    )
    if need.bytes > work.limit_bytes(memory_mb):
        raise SQLRejected(
            "This query",
            f"at worst it could hold about {work.human(need.bytes)} in memory ({need.joined_rows:,} joined rows, "
            f"{need.groups:,} groups, planned from the datasets' public size classes), more than the "
            f"{memory_mb:,} MB a job may use; a query that could run out of memory is refused before it reads data, "
            "because whether it would fail could depend on the data",
            "Group by coarser keys (or keys with public key sets), join fewer or smaller datasets, or ask the "
            "operator for a larger job memory limit.",
            rule="bounded_work",
        )


MATERIAL_ROWS = 0.01  # a share of rows left out worth a warning
MATERIAL_CLAMPED = 0.005  # a share of values beyond the bounds worth a warning
CLAMP_SIGNIFICANCE = 4  # standard errors of its noise a share beyond a bound must exceed to count


def _choices(scope, share: float) -> list[dict]:
    """What each choice of max_rows per dataset would cost and leave out, for explain: the 95%
    half-width of a COUNT at this query's epsilon share, and the estimated share of the dataset's
    rows left out (DP metadata). No data is read; the analyst picks before spending."""
    found = []
    m = scope.max_rows
    for relation in scope.relations:
        if relation.kind != "private":
            continue
        ceiling = relation.dataset.policy.privacy_unit.max_rows
        options = sorted({1, ceiling, relation.max_rows, *(2**i for i in range(1, 12) if 2**i < ceiling)})
        rows = []
        for k in options:
            sensitivity = max(1, m // relation.max_rows * k)
            left_out = metadata.dropped_share(relation.dataset.metadata, k)
            rows.append(
                {
                    "max_rows": k,
                    "count_half_width": round(privacy.half_width(privacy.laplace_scale(sensitivity, share)), 1),
                    "rows_left_out": None if left_out is None else round(left_out, 4),
                    "chosen": k == relation.max_rows,
                }
            )
        found.append({"dataset": relation.dataset.name, "ceiling": ceiling, "options": rows})
    return found


def _bias(
    scope,
    origins: dict,
    columns: dict,
    groups_pass: bool,
    max_groups: int,
    expressions: dict | None = None,
    linear: dict | None = None,
):
    """(`expressions`: an aggregated expression's key -> the (relation, column) its value reads;
    `linear`: key -> (a, b, (relation, column)) of an expression a * x + b.)"""
    """What bounding and clamping are estimated to leave out, from the DP statistics released at
    registration (sandbox/metadata.py): the facts intervals use, the same facts for explain and
    the release, and warnings in plain words where they are material."""
    facts: list[dict] = []
    notes: list[Note] = []
    kept = 1.0
    unit = scope.unit_relation.unit
    for relation in scope.relations:
        if relation.kind != "private":
            continue
        share = metadata.dropped_share(relation.dataset.metadata, relation.max_rows)
        ceiling = relation.dataset.policy.privacy_unit.max_rows
        facts.append(
            {
                "dataset": relation.dataset.name,
                "max_rows": relation.max_rows,
                "ceiling": ceiling,
                "rows_left_out": None if share is None else round(share, 4),
            }
        )
        if share is None:
            continue
        kept *= 1 - share
        if share >= MATERIAL_ROWS:
            key = "rows_left_out.below_ceiling" if relation.max_rows < ceiling else "rows_left_out"
            notes.append(note(key, share=round(share, 4), dataset=relation.dataset.name, rows=relation.max_rows,
                              unit=unit, ceiling=ceiling))
    if groups_pass:
        facts.append({"max_groups": max_groups})
        notes.append(note("max_groups", unit=unit, groups=max_groups))
    rows = 1 - kept
    per_column: dict[str, intervals.ColumnFacts] = {}
    for key in expressions or {}:
        # an expression's rows are left out like any other; how many of its values lie beyond its
        # derived bounds the metadata cannot say (it describes columns), so that part is not in the interval
        if columns[key].aggregable:
            per_column[key] = intervals.ColumnFacts(tuple(float(b) for b in columns[key].bounds), rows_left_out=rows)
    warned, noted_linear = set(), set()
    for key, (a, _, (relation, name)) in (linear or {}).items():
        column = relation.outputs[name].column
        if relation.kind != "private" or not column.aggregable or not columns[key].aggregable:
            continue
        meta = relation.dataset.metadata
        x_lo, x_hi = (float(b) for b in column.bounds)
        clamp = metadata.clamped(meta, name, x_lo, x_hi) or {}
        noise = clamp.get("noise", 0.0)
        beyond = {side: max(0.0, clamp.get(side, 0.0) - CLAMP_SIGNIFICANCE * noise) for side in ("below", "above")}
        excess = {side: clamp.get(f"{side}_excess", 0.0) * abs(a) for side in ("below", "above")}
        low, high = ("below", "above") if a > 0 else ("above", "below")  # a < 0 turns x's tail below into one above
        spread = metadata.spread(meta, name, x_lo, x_hi)
        per_column[key] = intervals.ColumnFacts(
            per_column[key].bounds,
            rows_left_out=rows,
            below=beyond[low],
            above=beyond[high],
            below_excess=excess[low] if beyond[low] else 0.0,
            above_excess=excess[high] if beyond[high] else 0.0,
            spread=None if spread is None else spread * abs(a),
        )
        said = (relation.dataset.name, name) in noted_linear
        noted_linear.add((relation.dataset.name, name))
        for share, side, bound_ in ((beyond["above"], "above", x_hi), (beyond["below"], "below", x_lo)):
            # the interval allows for it, as for the column itself: the column's own note says so, once
            if share >= MATERIAL_CLAMPED and (relation, name) not in origins.values() and not said:
                notes.append(note(f"clamped.{side}", share=round(share, 4), column=f"{relation.dataset.name}.{name}",
                                  bound=bound_))
    for key, inputs in (expressions or {}).items():
        if key in (linear or {}):
            continue
        # the expression's value is clamped where a column it is computed from lies beyond its policy
        # bound: say so (the interval cannot: its bias is in the column's units, not the expression's)
        for relation, name in inputs:
            column = relation.outputs[name].column
            if relation.kind != "private" or not column.aggregable or (relation.dataset.name, name) in warned:
                continue
            warned.add((relation.dataset.name, name))
            bounds_ = tuple(float(b) for b in column.bounds)
            clamp = metadata.clamped(relation.dataset.metadata, name, *bounds_) or {}
            noise = clamp.get("noise", 0.0)
            for side, bound_ in (("above", bounds_[1]), ("below", bounds_[0])):
                share = max(0.0, clamp.get(side, 0.0) - CLAMP_SIGNIFICANCE * noise)
                if share >= MATERIAL_CLAMPED and (relation, name) not in origins.values():
                    column_name = f"{relation.dataset.name}.{name}"
                    notes.append(
                        note(f"clamped_input.{side}", share=round(share, 4), column=column_name, bound=bound_)
                    )
    for key, (relation, name) in origins.items():
        column = columns[key]
        if not column.aggregable:
            continue
        bounds = tuple(float(b) for b in column.bounds)
        if relation.kind == "derived":
            inner = metadata.dropped_share(relation.dataset.metadata, relation.inner_rows) or 0.0
            per_column[key] = intervals.ColumnFacts(bounds, rows_left_out=1 - (1 - rows) * (1 - inner))
            continue
        meta = relation.dataset.metadata if relation.kind == "private" else None
        clamp = metadata.clamped(meta, name, *bounds) or {}
        # a share of values beyond a bound counts only beyond four standard errors of its noise: the
        # noise of an empty bin far beyond a bound would otherwise make up a heavy tail, and the
        # discrete Laplace's tails are heavier than a normal's (at two, an empty side passed in about
        # 1 of 40 registrations of the test city and widened every interval of that column)
        noise = clamp.get("noise", 0.0)
        below = max(0.0, clamp.get("below", 0.0) - CLAMP_SIGNIFICANCE * noise)
        above = max(0.0, clamp.get("above", 0.0) - CLAMP_SIGNIFICANCE * noise)
        per_column[key] = intervals.ColumnFacts(
            bounds,
            rows_left_out=rows if relation.kind == "private" else 0.0,
            below=below,
            above=above,
            below_excess=clamp.get("below_excess", 0.0) if below else 0.0,
            above_excess=clamp.get("above_excess", 0.0) if above else 0.0,
            spread=metadata.spread(meta, name, *bounds),
            density=metadata.density_table(meta, name),
        )
        if below or above:
            facts.append(
                {
                    "column": f"{relation.dataset.name}.{name}",
                    "bounds": list(bounds),
                    "below": round(below, 4),
                    "above": round(above, 4),
                }
            )
            for share, side, bound in ((above, "above", bounds[1]), (below, "below", bounds[0])):
                if share >= MATERIAL_CLAMPED:
                    column_name = f"{relation.dataset.name}.{name}"
                    notes.append(note(f"clamped.{side}", share=round(share, 4), column=column_name, bound=bound))
    return intervals.Bias(rows, per_column), facts, notes


def _fan_out(bound: Bound, join) -> int:
    """How many rows of the joined relation one row can meet (see work.estimate)."""
    relation = join.relation
    if relation.kind == "private":
        return relation.max_rows
    if relation.kind == "derived":
        return 1
    linked = []
    conjuncts = list(join.on.flatten()) if isinstance(join.on, exp.And) else [join.on]
    for conjunct in conjuncts:
        while isinstance(conjunct, exp.Paren):
            conjunct = conjunct.this
        if isinstance(conjunct, exp.EQ):
            for side in (conjunct.this, conjunct.expression):
                ref = bound.ref(side) if isinstance(side, exp.Column) else None
                if ref is not None and ref[0] is relation:
                    linked.append(relation.dataset.multiplicity(ref[1]))
    return min(linked, default=relation.dataset.size_bound)


def _output_name(item: exp.Expression, index: int) -> str:
    if item.alias:
        return item.alias
    if isinstance(item, exp.Column):
        return item.name
    return item.sql(dialect="duckdb")


def _pair_sums_with_counts(builder: _Builder, query: exp.Select, key_of, *, exclude: str | None, rounded: bool) -> dict:
    """Sum primitive id -> the id of the count of the same values, for the sums to centre.

    Not with the private-key selection count (its released values are conditioned on passing
    the threshold), and, when counts are rounded for release, not for a column whose SUM (or
    VAR) is asked: SUM = centred sum + c x count would carry c times the rounding."""
    summed = {
        key_of(node.this)
        for item in query.expressions
        for node in item.find_all(exp.Sum, exp.Variance, exp.VariancePop, exp.Stddev, exp.StddevSamp, exp.StddevPop)
    }
    paired = {}
    for need in builder.order:
        if need.kind != "sum" or need.power != 1:
            continue
        count = builder.needs.get(_Need("count", need.column).key())
        if count is None and need.column in builder.never_null:
            count = builder.needs.get(_Need("count").key())
        if count is None or count == exclude or (rounded and need.column in summed):
            continue
        paired[builder.needs[need.key()]] = count
    return paired


def _with_count(column: OutputColumn, paired: dict[str, str]) -> OutputColumn:
    """A SUM released from a centred sum also names its count: the interval needs both."""
    if column.function == "sum" and column.primitives[0] in paired:
        return replace(column, primitives=(column.primitives[0], paired[column.primitives[0]]))
    return column


def _count_need(builder: _Builder, column: str) -> str:
    """COUNT(column), which is COUNT(*) when the column is verified non-null (then both keys
    name the one primitive)."""
    if column in builder.never_null:
        pid = builder.need(_Need("count"))
        builder.needs.setdefault(_Need("count", column).key(), pid)
        return pid
    return builder.need(_Need("count", column))


def _per_group(need: _Need, per_unit: frozenset[str]) -> bool:
    """A primitive whose sensitivity is the number of groups a unit reaches (l0), which public
    keys bound only through the max_groups pass: distinct units, distinct values of a column
    constant within a unit."""
    return need.kind == "units" or (need.kind == "distinct" and need.column in per_unit)


def _key_values(column: Column) -> tuple | None:
    """The declared key set of a text or integer column, when every key has the column's own type
    (so comparing with them can never fail on a value), without NULL (COUNT DISTINCT skips it)."""
    keys = [k for k in column.keys or () if k is not None]
    if not keys:
        return None
    if column.type == "VARCHAR" and all(isinstance(k, str) for k in keys):
        return tuple(keys)
    if column.is_integer and all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
        return tuple(keys)
    return None


def _first_count(builder: _Builder) -> str | None:
    for need in builder.order:
        if need.kind in ("count", "units") and need.column is None:
            return builder.needs[need.key()]
    return None


def _describe(node: exp.Expression, builder: _Builder, key_of):
    """Register the primitives an aggregate needs; return its function name and their ids."""
    if isinstance(node, products.PAIRED):
        return products.describe(node, lambda **need: builder.need(_Need(**need)), key_of)
    if isinstance(node, exp.Count):
        inner = node.this
        if isinstance(inner, exp.Star):
            return "count", (builder.need(_Need("count")),)
        if isinstance(inner, exp.Distinct):  # units (of one fused relation, e.g. matched persons) or values
            target = inner.expressions[0]
            kind = "units" if builder.is_unit(target) else "distinct"
            return "count", (builder.need(_Need(kind, key_of(target))),)
        return "count", (_count_need(builder, key_of(inner)),)
    column = key_of(node.this)
    if isinstance(node, exp.Sum):
        return "sum", (builder.need(_Need("sum", column)),)
    if isinstance(node, exp.Avg):
        return "avg", (builder.need(_Need("sum", column)), _count_need(builder, column))
    if isinstance(node, exp.Variance | exp.VariancePop | exp.Stddev | exp.StddevSamp | exp.StddevPop):
        prims = (
            builder.need(_Need("sum", column, power=2)),
            builder.need(_Need("sum", column)),
            _count_need(builder, column),
        )
        return ("stddev" if isinstance(node, exp.Stddev | exp.StddevSamp | exp.StddevPop) else "var"), prims
    alpha = extremes.quantile_level(node)
    quantile = builder.need(_Need("quantile", column, alpha=alpha))
    # the quantile's interval turns its rank error into a share of the count (intervals.py): an
    # internal count unless the query releases that count anyway
    if column in builder.never_null:
        count = builder.need(_Need("count"), internal=True)
        builder.needs.setdefault(_Need("count", column).key(), count)
    else:
        count = builder.need(_Need("count", column), internal=True)
    builder.counted_by.setdefault(count, quantile)
    return "quantile", (quantile, count)


def _primitive(
    pid: str,
    need: _Need,
    columns: dict[str, Column],
    m: int,
    l0: int,
    epsilon: float,
    internal: bool,
    *,
    centered: bool = False,
    per_unit: frozenset[str] = frozenset(),
) -> Primitive:
    if need.kind == "count":
        return Primitive(pid, "count", need.column, m, epsilon, privacy.laplace_scale(m, epsilon), internal=internal)
    if need.kind == "units":
        return Primitive(pid, "units", need.column, l0, epsilon, privacy.laplace_scale(l0, epsilon), internal=internal)
    if need.kind == "moment":
        return products.primitive(pid, need, columns, m, epsilon, internal)
    if need.kind == "distinct":
        # a unit adds or removes at most one distinct value per row it has, and of a column constant
        # within it one value in each of the (at most l0) groups it reaches; in one group (l0 = 1),
        # counting only a declared key set, at most all of its keys
        d = min(l0, m) if _per_group(need, per_unit) else m
        values = _key_values(columns[need.column]) if l0 == 1 else None
        if values is not None and len(values) < d:
            d = len(values)
        else:
            values = None
        scale = privacy.laplace_scale(d, epsilon)
        return Primitive(pid, "distinct", need.column, d, epsilon, scale, internal=internal, values=values)
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
    # sum of t(x) = clamp(x) on an integer grid of `step`; for power 2, t(x) = (clamp(x) - shift)**2
    # with shift the middle of the bounds (a whole number for integers): a quarter of the
    # sensitivity of clamp(x)**2 on [0, hi], and the variance needs nothing else
    shift = 0.0
    if need.power == 1:
        t_lo, t_hi = lo, hi
        step = grid_step(column)
    else:
        shift = float(math.floor((lo + hi) / 2)) if column.is_integer else (lo + hi) / 2
        t_lo, t_hi = 0.0, max(hi - shift, shift - lo) ** 2
        step = step_for(t_hi, integral=column.is_integer)
    q_lo, q_hi = quantize(t_lo, step), quantize(t_hi, step)
    center = center_units(column) if centered and need.power == 1 else 0
    q_max = max(abs(q_lo - center), abs(q_hi - center))
    # q_max <= 2**21 and registration caps a dataset at 2**40 rows: every sum fits in 64 bits.
    # At least 1: bounds narrower than one grid step (x + 9223372036854775807 is [9.2e18, 9.2e18 +
    # 2e5], and its step is 2**43) put every value on one point, and the centred sum is then 0 for
    # any data; OpenDP's mechanisms take a sensitivity of at least 1 (found by the fuzzer).
    sensitivity = max(m * q_max, 1)
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
        center=center,
        shift=shift,
        internal=internal,
    )


def _with_half_width(column: OutputColumn, primitives: list[Primitive], round_to: int) -> OutputColumn:
    """The same figure the release carries (generate.half_width), for explain."""
    from sandbox.compiler.generate import half_width

    width = half_width(column, {p.id: p for p in primitives}, round_to)
    return column if width is None else replace(column, half_width=width)
