"""Mock rows: schema-faithful fake data generated from a dataset's *policy* alone.

A developer writes and debugs SQL against these rows before spending budget. They are made
from what the catalog already publishes — column types, public bounds, public keys,
nullability, the privacy unit and its `max_rows` — and never from real rows or statistics of
them, so they reveal nothing. To be useful for debugging they are plausible: public keys are
drawn with a Zipf-like skew, measures are right-skewed within their bounds (with a spike at the
lower bound, like incomes of children), and a privacy unit may have more rows than `max_rows`,
as real data does, so bounding is visible.

This is fake data generation, not DP noise, so Python's seeded `random` is the right tool:
same policy, rows and seed, same frame.

    >>> policy = {"name": "t", "privacy_unit": {"column": "pid", "max_rows": 1}, "columns": {
    ...     "pid": {"role": "identifier", "type": "BIGINT"},
    ...     "sex": {"role": "dimension", "type": "VARCHAR", "keys": ["F", "M"]},
    ...     "income": {"role": "measure", "type": "DOUBLE", "bounds": [0, 1000]}}}
    >>> frame = mock_frame(policy, rows=100)
    >>> frame.columns, frame.height, set(frame["sex"]) <= {"F", "M"}
    (['pid', 'sex', 'income'], 100, True)
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

__all__ = ["POLARS_TYPES", "mock_frame"]

POLARS_TYPES: dict[str, pl.DataType] = {
    "TINYINT": pl.Int8(),
    "SMALLINT": pl.Int16(),
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "FLOAT": pl.Float32(),
    "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
    "VARCHAR": pl.String(),
    "DATE": pl.Date(),
    "TIMESTAMP": pl.Datetime("us"),
}
_INTEGER_RANGE = {"TINYINT": 2**7 - 1, "SMALLINT": 2**15 - 1, "INTEGER": 2**31 - 1, "BIGINT": 2**63 - 1}
_NULL_SHARE = 0.05
_EPOCH = dt.date(2024, 1, 1)  # dates without public keys fall in 2024-2025


def mock_frame(policy: Mapping[str, Any], rows: int = 1000, seed: int = 0) -> pl.DataFrame:
    """`rows` fake rows for a dataset, from its catalog description (`GET /datasets/{name}`).

    Only queryable columns are described by the catalog, so only those appear. Values obey the
    policy: the declared type, `bounds`, `keys` and `nullable`.
    """
    if rows < 0:
        raise ValueError("rows must be zero or more")
    rng = random.Random(f"{policy.get('name', '')}:{seed}")
    unit = (policy.get("privacy_unit") or {}).get("column")
    max_rows = (policy.get("privacy_unit") or {}).get("max_rows", 1)
    data: dict[str, list[Any]] = {}
    for name, column in policy["columns"].items():
        if name == unit:
            values = _units(rng, rows, max_rows)
        else:
            draw = _generator(rng, name, column)
            values = [draw() for _ in range(rows)]
        if column.get("nullable"):
            values = [None if rng.random() < _NULL_SHARE else v for v in values]
        data[name] = values
    return (
        pl.DataFrame(
            {
                name: pl.Series(name, values, dtype=POLARS_TYPES[policy["columns"][name]["type"]])
                for name, values in data.items()
            }
        )
        if data
        else pl.DataFrame()
    )


def _units(rng: random.Random, rows: int, max_rows: int) -> list[int]:
    """Privacy-unit ids: one row each when `max_rows` is 1, else a long-tailed number of rows
    per unit, sometimes above `max_rows` (real data does that; the sandbox bounds it)."""
    ids: list[int] = []
    unit = rng.randrange(10_000, 20_000)
    while len(ids) < rows:
        count = 1 if max_rows == 1 else min(int(rng.paretovariate(1.0)), 2 * max_rows)  # half have one row
        ids.extend([unit] * count)
        unit += rng.randrange(1, 7)
    ids = ids[:rows]
    rng.shuffle(ids)
    return ids


def _generator(rng: random.Random, name: str, column: Mapping[str, Any]) -> Callable[[], Any]:
    kind, keys, bounds = column["type"], column.get("keys"), column.get("bounds")
    if keys:
        values = [_typed(k, kind) for k in keys]
        weights = [1 / (i + 1) ** 0.8 for i in range(len(values))]
        rng.shuffle(weights)  # which key is common is not a property of the data either
        return lambda: rng.choices(values, weights)[0]
    if kind == "BOOLEAN":
        return lambda: rng.random() < 0.3
    if kind == "VARCHAR":
        return lambda: f"{name}_{min(int(rng.paretovariate(1.0)), 99):02d}"
    if kind == "DATE":
        if bounds is not None:  # published: the dates lie in this range
            first, last = (_typed(b, "DATE") for b in bounds)
            return lambda: first + dt.timedelta(days=rng.randrange((last - first).days + 1))
        if "month" in name:
            return lambda: dt.date(2024 + (m := rng.randrange(24)) // 12, m % 12 + 1, 1)
        return lambda: _EPOCH + dt.timedelta(days=rng.randrange(731))
    if kind == "TIMESTAMP":
        start = dt.datetime(2024, 1, 1)
        return lambda: start + dt.timedelta(seconds=rng.randrange(731 * 86_400))
    integer = kind in _INTEGER_RANGE
    if bounds is None:
        if column.get("role") == "identifier":
            return lambda: rng.randrange(1, 10**9 if kind == "BIGINT" else _INTEGER_RANGE.get(kind, 10**6))
        return (lambda: rng.randrange(0, 100)) if integer else (lambda: rng.uniform(0, 100))
    lo, hi = float(bounds[0]), float(bounds[1])
    if column.get("role") == "measure":
        draw = _skewed(rng, lo, hi)
    else:  # a bounded dimension (age, a year): a broad hump inside the range
        draw = lambda: rng.triangular(lo, hi, lo + 0.35 * (hi - lo))  # noqa: E731
    if integer:
        ilo, ihi = math.ceil(lo), math.floor(hi)
        return lambda: min(max(round(draw()), ilo), ihi)
    return lambda: min(max(draw(), lo), hi)


def _skewed(rng: random.Random, lo: float, hi: float) -> Callable[[], float]:
    """Right-skewed inside [lo, hi]: a tenth at `lo`, the rest log-normal around a typical value
    at 5% of the range, clamped at `hi` (so a few rows sit on the bound, as outliers would)."""
    typical = (hi - lo) * 0.05

    def draw() -> float:
        if rng.random() < 0.1:
            return lo
        return lo + typical * math.exp(rng.gauss(0.0, 0.9))

    return draw


def _typed(value: Any, kind: str) -> Any:
    if kind in _INTEGER_RANGE:
        return int(value)
    if kind in ("DOUBLE", "FLOAT"):
        return float(value)
    if kind == "BOOLEAN":
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    if kind == "DATE":
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if kind == "TIMESTAMP":
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return str(value)
