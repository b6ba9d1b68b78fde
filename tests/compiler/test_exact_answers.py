"""The generated bounded SQL computes exactly what the privacy model says, on a fixture small
enough to compute by hand (clamping, nulls, quantization, public keys, bounding)."""

from __future__ import annotations

import math

import duckdb
import polars as pl
import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.compiler.plan import OutputRules
from sandbox.policy import Policy
from tests.support.exact import exact_primitives

ROWS = [  # pid, dept, amount, age
    (1, "a", 10.0, 30),
    (1, "a", 20.0, 30),
    (1, "b", 300.0, 30),  # 300 clamps to 100
    (2, "a", 50.0, 41),
    (3, "b", -5.0, 57),  # clamps to 0
    (4, "b", None, 62),
]


def _policy(
    max_rows: int, max_groups: int = 2, bounds: tuple[float, float] = (0, 100), *, nullable: bool = True,
    public_dept: bool = True,
) -> Policy:
    return Policy.model_validate(
        {
            "name": "visits",
            "title": "t",
            "description": "d",
            "owner": "o",
            "source": {"kind": "parquet", "location": "{data_dir}/visits.parquet"},
            "privacy_unit": {"column": "pid", "max_rows": max_rows, "max_groups": max_groups},
            "columns": {
                "pid": {"role": "identifier", "type": "BIGINT"},
                "dept": {"role": "dimension", "type": "VARCHAR"} | ({"keys": ["a", "b", "c"]} if public_dept else {}),
                "amount": {"role": "measure", "type": "DOUBLE", "bounds": list(bounds), "nullable": nullable},
                "age": {"role": "dimension", "type": "INTEGER", "bounds": [0, 100]},
            },
            "limits": {"max_epsilon_per_query": 2.0},
        }
    )


def _register(data_dir, max_rows: int, rows=ROWS, bounds: tuple[float, float] = (0, 100), **policy) -> Catalog:
    con = duckdb.connect()
    con.execute("CREATE TABLE v (pid BIGINT, dept VARCHAR, amount DOUBLE, age INTEGER)")
    con.executemany("INSERT INTO v VALUES (?, ?, ?, ?)", rows)
    con.execute(f"COPY v TO '{data_dir / 'visits.parquet'}' (FORMAT parquet)")
    cat = Catalog(data_dir)
    cat.register(_policy(max_rows, bounds=bounds, **policy))
    return cat


@pytest.fixture(scope="module", params=[3, 1], ids=["max_rows=3", "max_rows=1"])
def catalog(request, tmp_path_factory) -> Catalog:
    return _register(tmp_path_factory.mktemp(f"exact{request.param}"), request.param)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Catalog:
    """max_rows 3 keeps every row of the fixture, so the figures can be computed by hand."""
    return _register(tmp_path_factory.mktemp("exact-whole"), 3)


def _kept(catalog: Catalog) -> pl.DataFrame:
    """The rows bounding keeps, read independently of the SQL: rank <= max_rows."""
    dataset = catalog.get("visits")
    m = dataset.policy.privacy_unit.max_rows
    return pl.read_parquet(dataset.parquet_path).filter(pl.col("__rank") <= m)


def _value(plan, values: dict, pid: str) -> float:
    return values[pid] * plan.primitive(pid).step


def test_bounding_keeps_at_most_max_rows(catalog) -> None:
    kept = _kept(catalog)
    m = catalog.get("visits").policy.privacy_unit.max_rows
    assert kept.group_by("pid").len()["len"].max() <= m
    assert kept["pid"].n_unique() == 4


def test_counts_and_sums(catalog) -> None:
    kept = _kept(catalog)
    plan = compile_query(
        "SELECT COUNT(*), COUNT(amount), COUNT(DISTINCT pid), SUM(amount) FROM visits", catalog, epsilon=1.0
    )
    values = exact_primitives(plan)[()]
    clamped = kept["amount"].drop_nulls().clip(0, 100)
    assert values["p0"] == kept.height
    assert values["p1"] == kept["amount"].is_not_null().sum()
    assert values["p2"] == 4
    total = plan.primitive("p3")
    assert total.center * total.step == 50, "COUNT(amount) is released anyway: the sum is centred"
    assert plan.outputs[3].primitives == ("p3", "p1")
    assert _value(plan, values, "p3") + 50 * values["p1"] == pytest.approx(clamped.sum(), abs=1e-9)


def test_full_data_by_hand(whole) -> None:
    plan = compile_query(
        "SELECT dept, COUNT(*), SUM(amount), AVG(amount) FROM visits GROUP BY dept", whole, epsilon=1.0
    )
    values = exact_primitives(plan)
    assert values[("a",)]["p0"] == 3 and values[("b",)]["p0"] == 3
    # SUM and AVG share one sum centred on 50 and COUNT(amount): SUM = p1 + 50 * p2
    assert plan.outputs[2].primitives == ("p1", "p2") and plan.primitive("p1").center * plan.primitive("p1").step == 50
    assert _value(plan, values[("a",)], "p1") + 50 * values[("a",)]["p2"] == 80.0  # 10 + 20 + 50
    assert _value(plan, values[("b",)], "p1") + 50 * values[("b",)]["p2"] == 100.0  # 300 -> 100, -5 -> 0, NULL
    assert values[("b",)]["p2"] == 2  # COUNT(amount) skips the NULL
    assert plan.public_keys == (("a",), ("b",), ("c",))  # 'c' is released although absent


def test_where_filters_rows_after_bounding(catalog) -> None:
    kept = _kept(catalog)
    plan = compile_query("SELECT COUNT(*) FROM visits WHERE amount > 15", catalog, epsilon=1.0)
    assert exact_primitives(plan)[()]["p0"] == kept.filter(pl.col("amount") > 15).height


def test_quantile_histogram(catalog) -> None:
    kept = _kept(catalog)
    plan = compile_query("SELECT MEDIAN(amount) FROM visits", catalog, epsilon=1.0)
    p = plan.primitives[0]
    hist = exact_primitives(plan)[()][p.id]
    expected: dict[int, int] = {}
    for value in kept["amount"].drop_nulls().clip(0, 100):
        index = round((value - p.lo) / p.step)
        expected[index] = expected.get(index, 0) + 1
    assert hist == expected


def test_bucketing_key(catalog) -> None:
    kept = _kept(catalog)
    plan = compile_query("SELECT age // 20 * 20 AS band, COUNT(*) FROM visits GROUP BY band", catalog, epsilon=1.0)
    values = exact_primitives(plan)
    expected = kept.group_by((pl.col("age") // 20 * 20).alias("band")).len()
    assert {k[0]: v["p0"] for k, v in values.items()} == dict(expected.iter_rows())
    assert (0,) in plan.public_keys and (100,) in plan.public_keys


def test_sums_use_the_grid_stored_at_registration(catalog) -> None:
    plan = compile_query("SELECT SUM(amount), VAR_SAMP(amount) FROM visits", catalog, epsilon=1.0)
    assert 'SUM("__q_amount"' in plan.aggregate_sql, "power-1 sums read the stored quantized column"
    squares = "ROUND(((CASE WHEN"
    assert squares in plan.aggregate_sql and " - 50)" in plan.aggregate_sql, "squared deviations from 50, inline"
    assert "__rank <=" not in plan.aggregate_sql, "the engine file already holds only bounded rows"


NULL_ROWS = [(1, "a", 20.0, 30), (2, "a", None, 40), (3, "b", 5.0, 50)]  # bounds [10, 100]: 5 -> 10


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT SUM(amount) FROM visits", 30.0),  # a NULL is skipped, not clamped up to 10
        ("SELECT SUM(amount) FROM (SELECT pid, SUM(amount) AS amount FROM visits GROUP BY pid) AS u", 30.0),
        ("SELECT SUM(amount) FROM visits WHERE age > 0", 30.0),
    ],
    ids=["stored-grid", "pre-aggregated", "filtered"],
)
def test_nulls_are_skipped_not_clamped_to_a_bound(tmp_path, sql, expected) -> None:
    """DuckDB's GREATEST(NULL, 10) is 10: a NULL must not enter a sum as the lower bound."""
    catalog = _register(tmp_path, 1, NULL_ROWS, bounds=(10, 100))
    plan = compile_query(sql, catalog, epsilon=1.0)
    (sum_id,) = [p.id for p in plan.primitives if p.kind == "sum"]
    assert _value(plan, exact_primitives(plan)[()], sum_id) == pytest.approx(expected)


def test_avg_sums_deviations_from_the_centre_of_the_bounds(tmp_path) -> None:
    """AVG alone sums x - c, c the middle of the bounds: half the sensitivity of SUM(x) on
    [10, 100]; AVG = c + noisy SUM(x - c) / noisy COUNT(x)."""
    catalog = _register(tmp_path, 1, NULL_ROWS, bounds=(10, 100))
    plan = compile_query("SELECT AVG(amount) FROM visits", catalog, epsilon=1.0)
    total = next(p for p in plan.primitives if p.kind == "sum")
    plain = next(
        p for p in compile_query("SELECT SUM(amount) FROM visits", catalog, epsilon=1.0).primitives if p.kind == "sum"
    )
    centre = total.center * total.step
    assert centre == pytest.approx(55.0, abs=total.step)
    assert total.sensitivity * 2 <= plain.sensitivity + 2
    values = exact_primitives(plan)[()]
    assert _value(plan, values, total.id) == pytest.approx((20.0 - centre) + (10.0 - centre))
    with_sum = compile_query("SELECT SUM(amount), AVG(amount) FROM visits", catalog, epsilon=1.0)
    assert [p.center for p in with_sum.primitives if p.kind == "sum"] == [total.center], "one centred sum for both"
    assert with_sum.outputs[0].primitives == (with_sum.primitives[0].id, with_sum.primitives[1].id)
    rounded = compile_query(
        "SELECT SUM(amount), AVG(amount) FROM visits", catalog, epsilon=1.0, rules=OutputRules(round_to=10)
    )
    assert [p.center for p in rounded.primitives if p.kind == "sum"] == [0], "SUM must not carry c x rounding"
    alone = compile_query("SELECT AVG(amount) FROM visits", catalog, epsilon=1.0, rules=OutputRules(round_to=10))
    assert alone.primitives[0].center == total.center, "AVG divides by the released count anyway"


@pytest.mark.parametrize("hi", [1_000_000.5, 999_999.5, 3.5], ids=["half-up", "half-even", "small"])
def test_sensitivity_covers_the_largest_stored_grid_value(tmp_path, hi) -> None:
    """The planner's largest grid value must be DuckDB's ROUND (half away from zero), not
    Python's round (half to even), or the sensitivity is one step short."""
    catalog = _register(tmp_path, 1, [(1, "a", hi, 30), (2, "a", 0.0, 30)], bounds=(0, hi))
    plan = compile_query("SELECT SUM(amount) FROM visits", catalog, epsilon=1.0)
    (total,) = plan.primitives
    con = duckdb.connect(str(catalog.get("visits").engine_path), read_only=True)
    try:
        stored = con.execute('SELECT max(abs("__q_amount")) FROM data').fetchone()[0]
    finally:
        con.close()
    assert total.sensitivity >= stored


FULL_ROWS = [(1, "a", 20.0, 30), (2, "a", 70.0, 40), (3, "b", 5.0, 50)]  # amount never NULL


def _kinds(plan) -> list[tuple[str, str | None, int]]:
    return [(p.kind, p.column, p.center) for p in plan.primitives]


def test_count_of_a_verified_non_null_column_is_count_star(tmp_path) -> None:
    """One noisy count serves COUNT(*), COUNT(amount) and AVG's denominator, and the sum is
    centred on it: two primitives at epsilon / 2 instead of three at epsilon / 3."""
    catalog = _register(tmp_path, 1, FULL_ROWS, bounds=(10, 100), nullable=False)
    plan = compile_query(
        "SELECT COUNT(*), COUNT(amount), SUM(amount), AVG(amount) FROM visits", catalog, epsilon=1.0
    )
    (count, total) = plan.primitives
    assert (count.kind, count.column, total.kind) == ("count", None, "sum")
    assert total.center * total.step == pytest.approx(55.0, abs=total.step)
    assert [o.primitives for o in plan.outputs] == [("p0",), ("p0",), ("p1", "p0"), ("p1", "p0")]
    assert count.epsilon == total.epsilon == 0.5
    values = exact_primitives(plan)[()]
    assert values["p0"] == 3
    assert _value(plan, values, "p1") + total.center * total.step * 3 == pytest.approx(20 + 70 + 10)


def test_a_sum_is_not_centred_on_the_private_key_selection_count(tmp_path) -> None:
    """The selection count's released values are conditioned on passing the threshold: a SUM
    rebuilt from it would be biased. (A count of its own is still fine.)"""
    catalog = _register(tmp_path, 1, FULL_ROWS, bounds=(10, 100), nullable=False, public_dept=False)
    selected = compile_query("SELECT dept, SUM(amount) FROM visits GROUP BY dept", catalog, epsilon=1.0)
    assert selected.selection is not None
    assert [p.center for p in selected.primitives if p.kind == "sum"] == [0]
    counted = compile_query("SELECT dept, COUNT(*), SUM(amount) FROM visits GROUP BY dept", catalog, epsilon=1.0)
    assert counted.selection.primitive == counted.primitives[0].id
    assert [p.center for p in counted.primitives if p.kind == "sum"] == [0]


def test_a_nullable_column_keeps_its_own_count(tmp_path) -> None:
    catalog = _register(tmp_path, 1, NULL_ROWS, bounds=(10, 100))
    plan = compile_query("SELECT COUNT(*), SUM(amount) FROM visits", catalog, epsilon=1.0)
    assert _kinds(plan) == [("count", None, 0), ("sum", "amount", 0)], "COUNT(*) is not COUNT(amount)"


@pytest.mark.parametrize(
    ("bounds", "integer_bins"),
    [((0, 1000), True), ((0, 100), False)],
    ids=["spacing-a-whole-number-of-grid-steps", "otherwise"],
)
def test_quantile_bins_from_the_stored_grid(tmp_path, bounds, integer_bins) -> None:
    """Candidates 1 apart on [0, 1000] are 1024 steps of the stored grid (2**-10): the bins are
    integer arithmetic on the stored value; they equal rounding the clamped value, half away
    from zero (2.5 -> 3), NULLs skipped."""
    rows = [(1, "a", 2.5, 30), (2, "a", 10.0, 40), (3, "b", -5.0, 50), (4, "b", None, 60), (5, "a", 99.4, 70)]
    catalog = _register(tmp_path, 1, rows, bounds=bounds)
    plan = compile_query("SELECT MEDIAN(amount) FROM visits", catalog, epsilon=1.0)
    p = plan.primitives[0]
    assert ("//" in plan.histogram_sql[p.id]) is integer_bins
    assert not plan.needs_aggregate, "a lone quantile over known groups reads only its histogram"
    expected: dict[int, int] = {}
    for value in (2.5, 10.0, 0.0, 99.4):
        index = math.floor((value - p.lo) / p.step + 0.5)
        expected[index] = expected.get(index, 0) + 1
    assert exact_primitives(plan)[()][p.id] == expected
