"""SQL -> validated plan. Reads like the pipeline: parse -> normalize -> validate (RULES, one
module per rule) -> plan (bounded SQL + noise plan)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sqlglot import exp

from sandbox.compiler import spellings
from sandbox.compiler.bind import bind
from sandbox.compiler.cache import PLANS
from sandbox.compiler.context import Context
from sandbox.compiler.contribution import Contribution
from sandbox.compiler.dialects import check_backend
from sandbox.compiler.parse import parse
from sandbox.compiler.plan import OutputColumn, OutputRules, Plan, Primitive, Selection
from sandbox.compiler.planner import build_plan
from sandbox.compiler.rules import RULES, SYNTAX
from sandbox.compiler.work import DEFAULT_MEMORY_MB
from sandbox.errors import BudgetExceeded, InvalidParameter

if TYPE_CHECKING:
    from sandbox.catalog import Catalog

__all__ = [
    "Contribution",
    "OutputColumn",
    "OutputRules",
    "Plan",
    "Primitive",
    "Selection",
    "check_parameters",
    "compile_query",
]


def check_parameters(epsilon: object, delta: object) -> tuple[float, float | None]:
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, int | float)
        or not math.isfinite(epsilon)
        or epsilon < 1e-9
    ):
        raise InvalidParameter(
            f"epsilon must be a finite number of at least 1e-9 (got {epsilon!r}); typical values are 0.1 to 1.",
            parameter="epsilon",
        )
    if delta is not None and (
        isinstance(delta, bool) or not isinstance(delta, int | float) or not math.isfinite(delta) or not 0 < delta < 1
    ):
        raise InvalidParameter(
            f"delta must be a number strictly between 0 and 1 (got {delta!r}); leave it out to use the "
            "dataset's default.",
            parameter="delta",
        )
    return float(epsilon), (float(delta) if delta is not None else None)


def _normalize(query: exp.Expression) -> exp.Expression:
    """Fold unquoted dataset, column and alias names to lower case (DuckDB's names are
    case-insensitive; policy names are lower case)."""
    for ident in list(query.find_all(exp.Identifier)):
        if not ident.quoted and isinstance(ident.parent, exp.Column | exp.Table | exp.TableAlias | exp.Alias):
            ident.set("this", ident.this.lower())
    return query


def _distinct_as_group_by(query: exp.Expression) -> exp.Expression:
    """`SELECT DISTINCT a, b FROM t` (no aggregates, no GROUP BY) asks which groups exist: it is
    `SELECT a, b FROM t GROUP BY 1, 2`, released as group keys are (private keys through the
    threshold selection, public ones as declared)."""
    distinct = query.args.get("distinct") if isinstance(query, exp.Select) else None
    if (
        distinct is None
        or distinct.args.get("on") is not None
        or query.args.get("group") is not None
        or any(isinstance(n, exp.AggFunc) for item in query.expressions for n in item.walk())
        or any(isinstance(item.unalias(), exp.Star) for item in query.expressions)
    ):
        return query
    query.set("distinct", None)
    return query.group_by(*(str(i) for i in range(1, len(query.expressions) + 1)), copy=False)


def compile_query(
    sql: str,
    catalog: Catalog,
    *,
    epsilon: float,
    delta: float | None = None,
    rules: OutputRules | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
    contribution: Contribution | dict | None = None,
) -> Plan:
    """Validate `sql` against the catalog's policies (and an agreement's `rules`) and plan it.
    Touches no data. The pipeline: parse -> syntax rules -> bind (lineage and types) -> rules
    on the bound query -> plan -> generate -> the backend's check (one backend per query; on
    Spark, every construct rendered with DuckDB's meaning or refused). A query compiled before
    against the same catalog is not compiled again (cache.py)."""
    rules = rules or OutputRules()
    epsilon, delta = check_parameters(epsilon, delta)
    contribution = Contribution.parse(contribution)
    key = (sql, epsilon, delta, rules, memory_mb, repr(contribution))
    plan = PLANS.get(key, catalog)
    if plan is None:
        generation = getattr(catalog, "generation", None)
        plan = _compile(sql, catalog, epsilon, delta, rules, memory_mb, contribution)
        PLANS.put(key, catalog, generation, plan)
    return plan


def _compile(
    sql: str,
    catalog: Catalog,
    epsilon: float,
    delta: float | None,
    rules: OutputRules,
    memory_mb: int,
    contribution: Contribution,
) -> Plan:
    query = _distinct_as_group_by(spellings.rewrite(_normalize(parse(sql)), sql))
    ctx = Context(sql=sql, catalog=catalog, contribution=contribution)
    for rule in SYNTAX:
        rule.check(query, ctx)
    bind(query, ctx)
    ctx.group_keys = list(query.args["group"].expressions) if query.args.get("group") else []
    for rule in RULES:
        rule.check(query, ctx)
    contribution.check(catalog, {d.name for d in ctx.scope.datasets()})
    policies = [dataset.policy for dataset in ctx.scope.datasets()]
    cap = min([rules.max_epsilon or math.inf, *(p.limits.max_epsilon_per_query for p in policies)])
    if epsilon > cap:
        names = ", ".join(repr(p.name) for p in policies)
        raise BudgetExceeded(
            f"epsilon {epsilon:g} exceeds the per-query cap of {cap:g} (dataset {names} and your "
            f"agreement); ask for at most {cap:g}.",
            requested=epsilon,
            cap=cap,
        )
    plan = build_plan(query, ctx.group_keys, ctx.bound, sql, epsilon, delta, rules, memory_mb, contribution)
    check_backend(plan, catalog)
    return plan
