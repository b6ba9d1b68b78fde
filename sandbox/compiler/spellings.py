"""Spellings analysts bring from other dialects and from the SQL standard, rewritten into the
subset before anything is validated, so that every rule and the planner see one form:

- `agg(x) FILTER (WHERE cond)` is `agg(CASE WHEN cond THEN x END)` (COUNT(*) counts `1`): the
  standard's meaning, since an aggregate skips NULLs;
- `VAR(x)` is `VAR_SAMP(x)` and `STD(x)` is `STDDEV_SAMP(x)` (SmartNoise SQL, MySQL);
- `SELECT TOP n ...` (SQL Server) is `LIMIT n`: parse.py blanks the two words out of the text
  before DuckDB's grammar reads it (positions in messages stay those of the user's text).
"""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import position
from sandbox.errors import SQLRejected

__all__ = ["rewrite"]

_FUNCTIONS = {"var": exp.Variance, "std": exp.StddevSamp}


def rewrite(query: exp.Expression, sql: str = "") -> exp.Expression:
    if isinstance(query, exp.Select):  # an output keeps the name the user's spelling gives it
        for item in query.expressions:
            if not item.alias and any(_respelled(n) for n in item.walk()):
                item.replace(exp.alias_(item.copy(), item.sql("duckdb"), quoted=True))
    for node in list(query.find_all(exp.Anonymous)):
        cls = _FUNCTIONS.get(node.name.lower())
        if cls is not None and len(node.expressions) == 1:
            _swap(node, cls(this=node.expressions[0]))
    for node in list(query.find_all(exp.Filter)):
        if isinstance(node.expression, exp.Where) and isinstance(node.this, exp.AggFunc):
            _swap(node, _filtered(node, node.this, node.expression.this, sql))
    return query


def _respelled(node: exp.Expression) -> bool:
    return isinstance(node, exp.Filter) or (isinstance(node, exp.Anonymous) and node.name.lower() in _FUNCTIONS)


def _filtered(node: exp.Filter, aggregate: exp.Expression, condition: exp.Expression, sql: str) -> exp.Expression:
    target = aggregate.this
    if isinstance(target, exp.Distinct):
        line, column = position(sql, node)
        raise SQLRejected(
            f"FILTER on {aggregate.sql('duckdb')[:40]}",
            "a distinct count with a FILTER is not supported",
            "Move the condition into WHERE.",
            rule="aggregates",
            line=line,
            column=column,
            sql=sql or None,
        )
    value = exp.Literal.number(1) if isinstance(target, exp.Star) or target is None else target
    case = exp.Case(ifs=[exp.If(this=condition, true=value)])
    aggregate.set("this", case)
    return aggregate


def _swap(old: exp.Expression, new: exp.Expression) -> None:
    if old._meta:
        new.meta.update(old.meta)
    old.replace(new)
