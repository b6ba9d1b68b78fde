"""Public key sets: when every column a GROUP BY key reads has a public, finite domain (declared
`keys`, a small bounded integer range, or BOOLEAN), the set of possible groups is public. It is
computed here from the policy alone (never from data), every such group is released (also those
absent from the data) and groups outside it are dropped. Otherwise keys are private and groups
go through threshold selection."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from sandbox.policy import Column

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
    if values is not None and column.nullable:
        values.append(None)
    return values


def public_key_set(
    keys: list[exp.Expression], resolve: Callable[[exp.Column], Column]
) -> tuple[tuple[Any, ...], ...] | None:
    """Cached: it depends only on the key expressions and the columns' public domains."""
    names: dict[exp.Column, str] = {}
    renamed = []
    for key in keys:

        def rename(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Column):
                names.setdefault(node, f"c{len(names)}")
                return exp.column(names[node])
            return node

        renamed.append(key.copy().transform(rename))
    specs = tuple(resolve(column).model_dump_json() for column in names)
    return _cached(tuple(k.sql(dialect="duckdb") for k in renamed), specs)


@lru_cache(maxsize=512)
def _cached(key_sql: tuple[str, ...], specs: tuple[str, ...]) -> tuple[tuple[Any, ...], ...] | None:
    keys = [sqlglot.parse_one(k, read="duckdb") for k in key_sql]
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
        select = ", ".join(f"{k.sql(dialect='duckdb')} AS k{i}" for i, k in enumerate(keys))
        relation = " CROSS JOIN ".join(sources) if sources else "(SELECT 1)"
        rows = con.execute(f"SELECT DISTINCT {select} FROM {relation} ORDER BY ALL NULLS LAST").fetchall()
    except duckdb.Error:
        return None  # the expression fails on some public value: fall back to private keys
    finally:
        con.close()
    return tuple(tuple(row) for row in rows)
