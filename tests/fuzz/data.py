"""Adversarial datasets for every policy's schema, registered through the real catalog.

Each dataset has the policy's columns, types, roles and nullability, but values chosen to break
things: NULLs wherever allowed, empty strings, text that looks like a number or a date and text
that does not, the extremes of every integer type, NaN and infinities, DATE and TIMESTAMP at the
ends of their ranges (and 'infinity'), values far outside the policy's bounds, units with many
rows, and extreme unit ids. Datasets of one privacy-unit domain share their unit ids, so fused
queries match rows. Values are drawn with a fixed seed: the data is the same on every run.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb

from sandbox.catalog import Catalog
from sandbox.policy import Column, Policy, Role, load_policies

__all__ = ["ROWS", "build_catalog"]

ROWS = 240
_TEXT = [
    "",
    " ",
    "abc",
    "12",
    "-3",
    "007",
    "1e5",
    "3.5",
    "NaN",
    "inf",
    "2024-01-31",
    "2024-13-45",
    "true",
    "ß",
    "O'Brien",
    "a\\b",
    "%_",
    "厦门",
    "x" * 300,
    "Siming ",
]
_INTEGER = {
    "TINYINT": [-128, 127],
    "SMALLINT": [-32768, 32767],
    "INTEGER": [-(2**31), 2**31 - 1],
    "BIGINT": [-(2**63), 2**63 - 1],
}
_DOUBLE = ["0.0", "-0.0", "1.5", "-2.5", "'NaN'", "'inf'", "'-inf'", "1e308", "-1e308", "5e-324", "123456.789"]
_DATE = [
    "1970-01-01",
    "2024-02-29",
    "0001-01-01",
    "9999-12-31",
    "5881580-07-10",
    "5877642-06-25 (BC)",
    "infinity",
    "-infinity",
]
_TIMESTAMP = [
    "1970-01-01 00:00:00",
    "2024-02-29 12:34:56.789",
    "294247-01-10 04:00:54.775806",
    "290309-12-22 (BC) 00:00:00",
    "infinity",
    "-infinity",
]


def _values(column: Column, rng: random.Random) -> list[str]:
    """SQL literals a column's rows are drawn from (typed, so DuckDB builds the exact values)."""
    kind = column.type
    if kind == "VARCHAR":
        pool = [*(column.keys or ()), *(column.keys or ()), *_TEXT]
        return ["'" + str(v).replace("'", "''") + "'" for v in pool]
    if kind in _INTEGER:
        lo, hi = _INTEGER[kind]
        pool = [0, 1, -1, 7, 42, 100, lo, hi, lo + 1, hi - 1, lo // 2, hi // 3]
        if column.bounds:
            b_lo, b_hi = int(column.bounds[0]), int(column.bounds[1])
            pool += [b_lo, b_hi, b_lo - 1, b_hi + 1, (b_lo + b_hi) // 2]
        if column.keys:
            pool += list(column.keys) * 2
        return [f"CAST({v} AS {kind})" for v in pool if lo <= v <= hi]
    if kind in ("DOUBLE", "FLOAT"):
        pool = list(_DOUBLE)
        if column.bounds:
            b_lo, b_hi = column.bounds
            pool += [repr(b_lo), repr(b_hi), repr(b_hi * 1000 + 1), repr(b_lo - 1), repr((b_lo + b_hi) / 3)] * 2
        if kind == "FLOAT":  # its own extremes, not DOUBLE's
            pool = [v for v in pool if v not in ("1e308", "-1e308", "5e-324")] + ["3.4e38", "-3.4e38", "1e-45"]
        return [f"CAST({v} AS {kind})" for v in pool]
    if kind == "DATE":
        pool = _DATE if column.nullable else _DATE[:4]  # beyond 0001..9999 is stored as NULL (catalog)
        return [f"CAST('{v}' AS DATE)" for v in pool] + [
            f"CAST('20{rng.randint(10, 30)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}' AS DATE)" for _ in range(6)
        ]
    if kind == "TIMESTAMP":
        pool = _TIMESTAMP if column.nullable else _TIMESTAMP[:2]
        return [f"CAST('{v}' AS TIMESTAMP)" for v in pool]
    if kind == "BOOLEAN":
        return ["TRUE", "FALSE"]
    raise ValueError(kind)


def _units(rng: random.Random) -> list[int | None]:
    """Unit ids for the rows of one dataset: mostly one or two rows per unit, a few units with
    many rows (far above any max_rows), and ids at the ends of BIGINT."""
    ids: list[int] = []
    for unit in range(1, 60):
        ids += [unit] * (1 if unit % 3 else 2)
    for heavy in (61, 62, -(2**63), 2**63 - 1):
        ids += [heavy] * rng.randint(15, 30)
    rng.shuffle(ids)
    return ids[:ROWS]


def _table(policy: Policy, rng: random.Random) -> str:
    """The VALUES of one adversarial dataset, as DuckDB SQL."""
    unit = None if policy.public else policy.unit
    units = _units(rng) if unit else [None] * 40
    rows = []
    pools = {name: _values(column, rng) for name, column in policy.columns.items()}
    for i, unit_id in enumerate(units):
        values = []
        for name, column in policy.columns.items():
            if name == unit:
                if column.nullable and i % 17 == 0:
                    values.append(f"CAST(NULL AS {column.type})")
                else:
                    values.append(f"CAST({unit_id} AS {column.type})")
            elif column.nullable and rng.random() < 0.15:
                values.append(f"CAST(NULL AS {column.type})")
            else:
                values.append(rng.choice(pools[name]))
        rows.append("(" + ", ".join(values) + ")")
    names = ", ".join(f'"{n}"' for n in policy.columns)
    return f"SELECT * FROM (VALUES {', '.join(rows)}) AS t({names})"


FUZZ_POLICIES = Path(__file__).parent / "policies"


def build_catalog(policies_dir: Path, root: Path, seed: int = 20261203) -> Catalog:
    """Every policy of `policies_dir` (and the fuzz-only policies that have every column type and
    role), registered over adversarial data under `root`."""
    rng = random.Random(seed)
    source = root / "source"
    source.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(root / "sandbox")
    policies = {**load_policies(policies_dir), **load_policies(FUZZ_POLICIES)}
    con = duckdb.connect()
    try:
        for name, (policy, _file) in sorted(policies.items()):
            path = source / f"{name}.parquet"
            con.execute(f"COPY ({_table(policy, rng)}) TO '{path}' (FORMAT parquet)")
            located = policy.model_copy(
                update={"source": policy.source.model_copy(update={"kind": "parquet", "location": str(path)})}
            )
            catalog.register(located)
    finally:
        con.close()
    return catalog


def columns_of(policy: Policy) -> dict[str, Column]:
    return {n: c for n, c in policy.columns.items() if c.role is not Role.hidden}
