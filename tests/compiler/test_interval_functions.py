"""Intervals through scalar functions of released values: POWER (SmartNoise's test query
`SELECT POWER(SUM(age), 2)` was released without an interval, with a note blaming a denominator)."""

from __future__ import annotations

import duckdb
import pytest
from sqlglot import exp, parse_one

from sandbox.compiler import intervals


def _ends(sql: str, lo: str | None, hi: str | None) -> tuple[float | None, float | None]:
    node = parse_one(sql, read="duckdb")
    inner = node.this
    low, high = intervals.combine(node, {id(inner): (lo, hi)}, {})
    con = duckdb.connect()
    return tuple(None if e is None else con.execute(f"SELECT CAST({e} AS DOUBLE)").fetchone()[0] for e in (low, high))


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [(-3, 2, 2), (1, 4, 2), (-4, -1, 2), (-2, 3, 3), (-5, -2, 3), (0, 9, 0.5), (2, 5, 0), (-1, 1, 4), (3, 3, 2)],
)
def test_power_of_an_interval_is_the_tightest_interval_of_the_values(a, b, p) -> None:
    lo, hi = _ends(f"POWER(x, {p})", str(a), str(b))
    points = [a + (b - a) * i / 100 for i in range(101)] + ([0] if a < 0 < b else [])
    values = [x**p for x in points if x >= 0 or float(p).is_integer()]
    assert lo == pytest.approx(min(values)) and hi == pytest.approx(max(values)), (lo, hi, min(values), max(values))


def test_power_with_an_open_end_keeps_what_is_known() -> None:
    assert _ends("POWER(x, 3)", None, "2") == (None, 8)
    assert _ends("POWER(x, 2)", None, "2") == (0, None)  # an even power is never below 0


@pytest.mark.parametrize("sql", ["POWER(x, -1)", "POWER(x, y)"])
def test_power_without_a_constant_non_negative_exponent_has_no_interval(sql) -> None:
    node = parse_one(sql, read="duckdb")
    assert isinstance(node, exp.Pow)
    assert intervals.combine(node, {id(node.this): ("1", "2")}, {}) == (None, None)
