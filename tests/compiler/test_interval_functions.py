"""Intervals through scalar functions of released values: POWER, SIGN, LN and LOG (SmartNoise's
test query `SELECT POWER(SUM(age), 2)` was released without an interval, with a note blaming a
denominator; SIGN, LOG, LOG10, LOG2 and POWER(2, x) the same; LN's lower end was NaN where the
argument's interval reached below 0)."""

from __future__ import annotations

import duckdb
import pytest
from sqlglot import exp, parse_one

from sandbox.compiler import intervals


def _ends(sql: str, lo: str | None, hi: str | None) -> tuple[float | None, float | None]:
    node = parse_one(sql, read="duckdb")
    inner = next(c for c in node.find_all(exp.Column) if c.name == "x")
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


@pytest.mark.parametrize(
    ("function", "a", "b"),
    [
        ("SIGN(x)", -3, 2), ("SIGN(x)", 1, 4), ("SIGN(x)", -4, -1), ("SIGN(x)", 0, 0),
        ("LN(x)", 0.5, 9), ("LOG(x)", 1, 1000), ("LOG10(x)", 2, 50), ("LOG2(x)", 0.25, 8), ("LOG(3, x)", 1, 81),
        ("POWER(2, x)", -3, 5), ("POWER(0.5, x)", -3, 5), ("POWER(1, x)", -3, 5), ("2 ** x", 0, 10),
    ],
)
def test_monotone_functions_map_the_ends(function, a, b) -> None:
    """The interval is exactly the range of the function over [a, b] (checked on 1001 points)."""
    lo, hi = _ends(function, str(a), str(b))
    expr = function.replace("x", "CAST(v AS DOUBLE)")
    low, high = duckdb.connect().execute(
        f"SELECT MIN({expr}), MAX({expr}) FROM (SELECT {a} + ({b} - {a}) * i / 1000 AS v FROM range(1001) t(i))"
    ).fetchone()
    assert lo == pytest.approx(low) and hi == pytest.approx(high), (lo, hi, low, high)


@pytest.mark.parametrize("function", ["LN(x)", "LOG(x)", "LOG(2, x)"])
def test_a_logarithm_is_unbounded_below_where_its_argument_reaches_0(function) -> None:
    lo, hi = _ends(function, "-5", "100")
    at_100 = duckdb.connect().execute(f"SELECT {function.replace('x', '100.0')}").fetchone()[0]
    assert lo is None and hi == pytest.approx(at_100)


@pytest.mark.parametrize("function", ["LOG(1, x)", "LOG(0.5, x)", "POWER(-2, x)", "POWER(0, x)"])
def test_a_base_without_a_monotone_function_has_no_interval(function) -> None:
    node = parse_one(function, read="duckdb")
    inner = node.expression
    assert intervals.combine(node, {id(inner): ("1", "2")}, {}) == (None, None)


def _ends_of(sql: str, given: dict[str, tuple[str | None, str | None]]) -> tuple[float | None, float | None]:
    """The interval of `sql` when its columns (standing for released aggregates) have `given` ends."""
    node = parse_one(sql, read="duckdb")
    parts = {id(c): given[c.name] for c in node.find_all(exp.Column) if c.name in given}
    low, high = intervals.combine(node, parts, {})
    con = duckdb.connect()
    return tuple(None if e is None else con.execute(f"SELECT CAST({e} AS DOUBLE)").fetchone()[0] for e in (low, high))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CASE WHEN n > 10 THEN x ELSE 0 END", (0, 9)),  # either branch: the exact n may fall either side
        ("CASE WHEN n > 10 THEN x ELSE y END", (-4, 9)),
        ("CASE WHEN n > 10 THEN x END", (2, 9)),  # otherwise NULL, which needs no interval
        ("CASE WHEN n > 10 THEN x WHEN n > 5 THEN 20 ELSE y END", (-4, 20)),
        ("IF(n > 10, x, 0)", (0, 9)),
        ("COALESCE(x, 0)", (0, 9)),
        ("COALESCE(x, y, 100)", (-4, 100)),
        ("NULLIF(x, 3)", (2, 9)),
        ("x % 7", (0, 7)),
        ("y % 7", (-7, 7)),
        ("(0 - x) % 2.5", (-2.5, 0)),
    ],
)
def test_choices_and_remainders_of_released_values_have_intervals(sql, expected) -> None:
    assert _ends_of(sql, {"x": ("2", "9"), "y": ("-4", "1"), "n": ("8", "12")}) == pytest.approx(expected)


def test_an_open_end_of_one_outcome_opens_the_choice() -> None:
    """A NULL end at run time means unbounded (a ratio whose denominator may be 0): the hull must
    not skip it, as DuckDB's LEAST and GREATEST would."""
    open_end = ("CAST(NULL AS DOUBLE)", "5")
    assert _ends_of("COALESCE(x, y)", {"x": ("2", "9"), "y": open_end}) == (None, 9)


@pytest.mark.parametrize(
    "expression",
    [
        "POWER(SUM(age), 2)", "SIGN(SUM(age) - 40000)", "LOG(SUM(age))", "LN(AVG(income) + 1)",
        "POWER(2, AVG(age) / 10)", "COALESCE(AVG(age), 0)", "NULLIF(COUNT(*), 0)",
        "CASE WHEN COUNT(*) > 10 THEN AVG(age) END", "IF(COUNT(*) > 10, AVG(age), 0)", "AVG(age) % 7",
    ],
)
def test_every_released_cell_has_an_interval(expression, demo_catalog) -> None:
    from tests.support.intervals import assert_released_cells_have_intervals

    for dataset in ("pums_pid", "pums_null"):
        sql = f"SELECT sex, {expression} AS t FROM {dataset} GROUP BY sex"
        rows = assert_released_cells_have_intervals(sql, demo_catalog)
        assert rows and all(r["__lo_1"] is not None and r["__hi_1"] is not None for r in rows if not r["__suppressed"])
