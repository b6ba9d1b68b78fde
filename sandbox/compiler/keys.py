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
    from sandbox.compiler.scope import Bound

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
    are evaluated as the engine evaluates them (the same total rendering, render.py).

    Columns of a public reference table take their values together, as the rows of that table
    hold them (its distinct tuples, plus all-NULL for a LEFT join): every column of a public table
    is public, so `GROUP BY d.district, d.population` releases one group per district of the
    table, whichever of them the private rows reach, and never a pairing the table does not hold."""
    names: dict[tuple[str, str], str] = {}
    specs: list[tuple] = []
    public: dict[str, list[tuple[str, str]]] = {}  # public relation alias -> [(column, cN)]

    def column(node: exp.Column) -> exp.Expression:
        relation, name = bound.ref(node)
        if (relation.alias, name) not in names:
            names[(relation.alias, name)] = f"c{len(names)}"
            if relation.kind == "public":
                public.setdefault(relation.alias, []).append((name, names[(relation.alias, name)]))
            else:
                specs.append(("column", names[(relation.alias, name)], relation.outputs[name].column.model_dump_json()))
        return exp.column(names[(relation.alias, name)])

    renderer = Renderer(bound.facts, column)
    rendered = []
    for key in keys:  # as the engine sends keys: DATE/TIMESTAMP as text (generate._transported)
        sql = renderer.sql(key)
        rendered.append(f"CAST({sql} AS VARCHAR)" if bound.typed(key).type.name in ("DATE", "TIMESTAMP") else sql)
    rendered = tuple(rendered)
    for alias, columns in public.items():
        relation = bound.scope.by_alias(alias)
        left = any(j.relation is relation and j.kind == "left" for j in bound.scope.joins)
        rows = _public_rows(relation, [c for c, _ in columns], left)
        if rows is None:
            return None
        types = tuple(relation.outputs[c].column.type for c, _ in columns)
        specs.append(("public", tuple(n for _, n in columns), types, rows))
    return _cached(rendered, tuple(specs))


def _public_rows(relation, columns: list[str], left: bool) -> tuple[tuple[Any, ...], ...] | None:
    """The distinct tuples of a public table's `columns` (None when there are more than
    MAX_DOMAIN: the keys are then private and go through threshold selection)."""
    listed = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    con = duckdb.connect(config={"threads": "1"})
    try:
        con.execute(f"ATTACH '{relation.dataset.engine_path}' AS p (READ_ONLY)")
        rows = con.execute(f"SELECT DISTINCT {listed} FROM p.main.data LIMIT {MAX_DOMAIN + 1}").fetchall()
    finally:
        con.close()
    if len(rows) > MAX_DOMAIN:
        return None
    if left:
        rows.append(tuple(None for _ in columns))
    return tuple(dict.fromkeys(tuple(r) for r in rows))


@lru_cache(maxsize=512)
def _cached(key_sql: tuple[str, ...], specs: tuple[tuple, ...]) -> tuple[tuple[Any, ...], ...] | None:
    size = 1
    sources: list[tuple] = []
    for spec in specs:
        if spec[0] == "column":
            _, name, text = spec
            column = Column.model_validate_json(text)
            domain = _domain(column)
            if domain is None:
                return None
            sources.append(("column", name, column.type, domain))
            size *= len(domain)
        else:
            sources.append(spec)
            size *= max(len(spec[3]), 1)
        if size > MAX_PRODUCT:
            return None
    con = duckdb.connect(config={"enable_external_access": "false", "threads": "1"})
    try:
        tables = []
        for i, source in enumerate(sources):
            if source[0] == "column":
                _, name, type_, domain = source
                con.execute(f'CREATE TABLE d{i} AS SELECT unnest($values::{type_}[]) AS "{name}"', {"values": domain})
            else:
                _, names, types, rows = source
                con.execute(f"CREATE TABLE d{i} ({', '.join(f'{n} {t}' for n, t in zip(names, types, strict=True))})")
                if rows:
                    con.executemany(f"INSERT INTO d{i} VALUES ({', '.join('?' for _ in names)})", list(rows))
            tables.append(f"d{i}")
        sources = tables
        select = ", ".join(f"{k} AS k{i}" for i, k in enumerate(key_sql))
        relation = " CROSS JOIN ".join(sources) if sources else "(SELECT 1)"
        rows = con.execute(f"SELECT DISTINCT {select} FROM {relation} ORDER BY ALL NULLS LAST").fetchall()
    except duckdb.Error:
        return None  # the expression fails on some public value: fall back to private keys
    finally:
        con.close()
    return tuple(tuple(row) for row in rows)
