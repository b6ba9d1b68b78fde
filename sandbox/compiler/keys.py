"""Public key sets: when every column a GROUP BY key reads has a public, finite domain (declared
`keys`, a small bounded integer range, a bounded DATE range of at most MAX_DOMAIN days, or
BOOLEAN), the set of possible groups is public. It is
computed here from the policy alone (never from data), every such group is released (also those
absent from the data) and groups outside it are dropped. Otherwise keys are private and groups
go through threshold selection."""

from __future__ import annotations

import math
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb
from sqlglot import exp

from sandbox.compiler.render import Renderer
from sandbox.policy import Column

if TYPE_CHECKING:
    from sandbox.compiler.bind import Bound

__all__ = ["public_key_set"]

MAX_DOMAIN = 10_001
MAX_PRODUCT = 200_000


def _domain(column: Column) -> list[Any] | None:
    values: list[Any] | None = None
    if column.keys is not None:
        values = list(column.keys)
    elif column.type == "BOOLEAN":
        values = [False, True]
    elif column.is_integer and column.bounds is not None:
        lo, hi = math.ceil(column.bounds[0]), math.floor(column.bounds[1])
        if hi - lo + 1 <= MAX_DOMAIN:
            values = list(range(lo, hi + 1))
    elif column.type == "DATE" and column.bounds is not None:
        first, last = column.bounds
        if (last - first).days + 1 <= MAX_DOMAIN:  # every day: date_trunc, YEAR, strftime of them
            values = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if values is not None and column.nullable:
        values.append(None)
    return values


def public_key_set(keys: list[exp.Expression], bound: Bound) -> tuple[tuple[Any, ...], ...] | None:
    """Cached: it depends only on the key expressions and the columns' public domains. The keys
    are evaluated as the engine evaluates them (the same total rendering, render.py)."""
    names: dict[tuple[str, str], str] = {}
    specs: list[str] = []

    def column(node: exp.Column) -> exp.Expression:
        relation, name = bound.ref(node)
        if (relation.alias, name) not in names:
            names[(relation.alias, name)] = f"c{len(names)}"
            specs.append(relation.outputs[name].column.model_dump_json())
        return exp.column(names[(relation.alias, name)])

    renderer = Renderer(bound.facts, column)
    rendered = []
    for key in keys:  # as the engine sends keys: DATE/TIMESTAMP as text (generate._transported)
        sql = renderer.sql(key)
        rendered.append(f"CAST({sql} AS VARCHAR)" if bound.typed(key).type.name in ("DATE", "TIMESTAMP") else sql)
    rendered = tuple(rendered)
    return _cached(rendered, tuple(specs))


@lru_cache(maxsize=512)
def _cached(key_sql: tuple[str, ...], specs: tuple[str, ...]) -> tuple[tuple[Any, ...], ...] | None:
    columns = [Column.model_validate_json(spec) for spec in specs]
    domains = {}
    size = 1
    for i, column in enumerate(columns):
        domain = _domain(column)
        if domain is None:
            return None
        domains[f"c{i}"] = domain
        size *= len(domain)
        if size > MAX_PRODUCT:
            return None
    con = duckdb.connect(config={"enable_external_access": "false", "threads": "1"})
    try:
        sources = []
        for i, column in enumerate(columns):
            con.execute(
                f'CREATE TABLE d{i} AS SELECT unnest($values::{column.type}[]) AS "c{i}"', {"values": domains[f"c{i}"]}
            )
            sources.append(f"d{i}")
        select = ", ".join(f"{k} AS k{i}" for i, k in enumerate(key_sql))
        relation = " CROSS JOIN ".join(sources) if sources else "(SELECT 1)"
        rows = con.execute(f"SELECT DISTINCT {select} FROM {relation} ORDER BY ALL NULLS LAST").fetchall()
    except duckdb.Error:
        return None  # the expression fails on some public value: fall back to private keys
    finally:
        con.close()
    return tuple(tuple(row) for row in rows)
