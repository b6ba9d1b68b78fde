"""Exact answers, by hand, of the statistics added for issue 18 (part C): COUNT(DISTINCT col) of
a column that is not the unit, key-only GROUP BY, MIN/MAX as quantiles near the extremes, and
correlation, covariance and regression from bounded sums of products. The fixture is small
enough to compute every figure in the head; the sensitivities are the planner's (their proof
on neighbouring datasets is tests/compiler/test_neighbours.py)."""

from __future__ import annotations

import math

import duckdb
import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.policy import Policy
from tests.support.exact import exact_primitives

ROWS = [  # pid, dept, amount, age, score
    (1, "a", 10.0, 30, 1.0),
    (1, "a", 20.0, 30, 3.0),
    (1, "b", 300.0, 30, 2.0),  # 300 clamps to 100
    (2, "a", 50.0, 41, None),
    (3, "b", -5.0, 57, 4.0),  # -5 clamps to 0
    (4, "b", None, 62, 5.0),
]


def _register(
    data_dir, *, max_rows: int = 3, max_groups: int = 2, public_dept: bool = True, rows=ROWS, keys=("a", "b", "c")
) -> Catalog:
    con = duckdb.connect()
    con.execute("CREATE TABLE v (pid BIGINT, dept VARCHAR, amount DOUBLE, age INTEGER, score DOUBLE)")
    con.executemany("INSERT INTO v VALUES (?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY v TO '{data_dir / 'visits.parquet'}' (FORMAT parquet)")
    policy = Policy.model_validate(
        {
            "name": "visits",
            "title": "t",
            "description": "d",
            "owner": "o",
            "source": {"kind": "parquet", "location": "{data_dir}/visits.parquet"},
            "privacy_unit": {"column": "pid", "max_rows": max_rows, "max_groups": max_groups},
            "columns": {
                "pid": {"role": "identifier", "type": "BIGINT"},
                "dept": {"role": "dimension", "type": "VARCHAR"} | ({"keys": list(keys)} if public_dept else {}),
                "amount": {"role": "measure", "type": "DOUBLE", "bounds": [0, 100], "nullable": True},
                "age": {"role": "dimension", "type": "INTEGER", "bounds": [0, 100], "constant_per_unit": True},
                "score": {"role": "measure", "type": "DOUBLE", "bounds": [0, 10], "nullable": True},
            },
            "limits": {"max_epsilon_per_query": 2.0},
        }
    )
    catalog = Catalog(data_dir)
    catalog.register(policy)
    return catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """max_rows 3 keeps every row of the fixture, so the figures can be computed by hand."""
    return _register(tmp_path_factory.mktemp("more-statistics"))


# -- COUNT(DISTINCT col) ----------------------------------------------------------------------


def test_count_distinct_values_by_hand(catalog) -> None:
    plan = compile_query(
        "SELECT COUNT(DISTINCT dept), COUNT(DISTINCT amount), COUNT(DISTINCT age), COUNT(DISTINCT pid) FROM visits",
        catalog,
        epsilon=1.0,
    )
    assert [(p.kind, p.column) for p in plan.primitives] == [
        ("distinct", "dept"),
        ("distinct", "amount"),
        ("distinct", "age"),
        ("units", "pid"),
    ]
    values = exact_primitives(plan)[()]
    assert values == {"p0": 2, "p1": 5, "p2": 4, "p3": 4}, "raw values (300 and -5 are distinct), NULL skipped"


def test_count_distinct_sensitivity_is_the_rows_of_a_unit_or_its_groups(catalog) -> None:
    """A unit adds at most one new value per row (m = 3); of `age`, declared constant per unit,
    one value per group it reaches: 1 ungrouped, l0 = min(max_groups, m) = 2 grouped."""
    ungrouped = compile_query("SELECT COUNT(DISTINCT dept), COUNT(DISTINCT age) FROM visits", catalog, epsilon=1.0)
    assert [p.sensitivity for p in ungrouped.primitives] == [3, 1]
    grouped = compile_query(
        "SELECT dept, COUNT(DISTINCT amount), COUNT(DISTINCT age) FROM visits GROUP BY dept", catalog, epsilon=1.0
    )
    assert [p.sensitivity for p in grouped.primitives] == [3, 2]
    assert "__group_index <= 2" in grouped.aggregate_sql, "l0 = 2 holds only with the max_groups pass"
    values = exact_primitives(grouped)
    assert values[("a",)]["p0"] == 3 and values[("a",)]["p1"] == 2  # amounts 10, 20, 50; ages 30, 41
    assert values[("b",)]["p0"] == 2 and values[("b",)]["p1"] == 3  # amounts 300, -5 (NULL skipped); 30, 57, 62


def test_count_distinct_of_declared_keys_is_clipped_to_the_key_set(catalog) -> None:
    """At most 3 departments exist (declared keys): a noisy count above is clipped, and so is
    its interval (post-processing)."""
    plan = compile_query("SELECT COUNT(DISTINCT dept) AS d FROM visits", catalog, epsilon=1.0)
    assert "LEAST(" in plan.output_sql and "CAST(3 AS DOUBLE))" in plan.output_sql
    for row in _release(compile_query("SELECT COUNT(DISTINCT dept) AS d FROM visits", catalog, epsilon=0.05), 20):
        assert 0 <= row["__lo_0"] <= row["d"] <= row["__hi_0"] <= 3 and isinstance(row["d"], float), row


def test_count_distinct_over_a_small_key_set_counts_only_its_keys(tmp_path) -> None:
    """Ungrouped, a unit adds at most every declared key: sensitivity min(max_rows, keys) = 1
    with one key, and only declared keys are counted ('b' is not), so the bound holds whatever
    the data holds. Grouped by a key that is not constant per unit, max_rows as before."""
    catalog = _register(tmp_path, keys=("a",))
    plan = compile_query("SELECT COUNT(DISTINCT dept) FROM visits", catalog, epsilon=1.0)
    (p,) = plan.primitives
    assert (p.sensitivity, p.values) == (1, ("a",)) and "IN ('a')" in plan.aggregate_sql
    assert exact_primitives(plan)[()][p.id] == 1
    grouped = compile_query("SELECT dept, COUNT(DISTINCT dept) FROM visits GROUP BY dept", catalog, epsilon=1.0)
    assert [(p.sensitivity, p.values) for p in grouped.primitives] == [(3, None)]


# -- every unit removed in turn: no primitive moves by more than its sensitivity ----------------

NEIGHBOUR_QUERIES = [
    "SELECT COUNT(DISTINCT dept), COUNT(DISTINCT amount), COUNT(DISTINCT age) FROM visits",
    "SELECT dept, COUNT(DISTINCT amount), COUNT(DISTINCT age) FROM visits GROUP BY dept",
    "SELECT age, COUNT(DISTINCT dept) FROM visits GROUP BY age",
    "SELECT dept FROM visits GROUP BY dept",
    "SELECT MIN(amount), MAX(score) FROM visits",
    "SELECT dept, MIN(score), MAX(amount) FROM visits GROUP BY dept",
    "SELECT CORR(score, amount), REGR_SLOPE(amount, score), REGR_INTERCEPT(score, amount) FROM visits",
    "SELECT dept, COVAR_SAMP(score, amount), REGR_COUNT(amount, score) FROM visits GROUP BY dept",
]


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory) -> dict[int, Catalog]:
    """The fixture without each unit in turn (the same secret: every other unit keeps its rows),
    `dept` a private key (its groups pass the threshold selection) or one declared key."""
    root = tmp_path_factory.mktemp("more-neighbours")
    secret = bytes(range(32))
    found = {}
    for variant, options in (("private", {"public_dept": False}), ("one key", {"keys": ("a",)})):
        for removed in (0, 1, 2, 3, 4):
            directory = root / f"{variant}-without-{removed}"
            directory.mkdir()
            (directory / "secret.key").write_bytes(secret)
            rows = [r for r in ROWS if r[0] != removed]
            found[(variant, removed)] = _register(directory, max_rows=2, rows=rows, **options)
    return found


@pytest.mark.parametrize("sql", NEIGHBOUR_QUERIES)
@pytest.mark.parametrize("removed", [1, 2, 3, 4])
@pytest.mark.parametrize("variant", ["private", "one key"])
def test_removing_a_unit_moves_each_primitive_within_its_sensitivity(neighbours, sql, removed, variant) -> None:
    full, without = neighbours[(variant, 0)], neighbours[(variant, removed)]
    plan, plan_n = compile_query(sql, full, epsilon=1.0), compile_query(sql, without, epsilon=1.0)
    assert [p.sensitivity for p in plan.primitives] == [p.sensitivity for p in plan_n.primitives]
    a, b = exact_primitives(plan), exact_primitives(plan_n)
    for p in plan.primitives:
        groups = set(a) | set(b)
        if p.kind == "quantile":
            change = sum(
                abs(a.get(g, {}).get(p.id, {}).get(i, 0) - b.get(g, {}).get(p.id, {}).get(i, 0))
                for g in groups
                for i in set(a.get(g, {}).get(p.id, {})) | set(b.get(g, {}).get(p.id, {}))
            )
        else:
            change = sum(abs((a.get(g, {}).get(p.id) or 0) - (b.get(g, {}).get(p.id) or 0)) for g in groups)
        assert change <= p.sensitivity, f"{p.id} ({p.kind} {p.column}) moved by {change} > {p.sensitivity}"


# -- keys alone: SELECT k FROM t GROUP BY k, SELECT DISTINCT k FROM t ---------------------------


def test_public_keys_alone_are_the_declared_key_set_and_cost_nothing(catalog) -> None:
    plan = compile_query("SELECT dept FROM visits GROUP BY dept", catalog, epsilon=1.0)
    assert (plan.epsilon, plan.delta, plan.primitives, plan.selection) == (0.0, 0.0, (), None)
    assert plan.public_keys == (("a",), ("b",), ("c",))
    assert not plan.needs_aggregate, "no data is read"
    assert [n.key for n in plan.notes] == ["public_keys_only"]
    rows = _release(plan, 1)
    assert [r["dept"] for r in rows] == ["a", "b", "c"], "'c' is listed although absent: the key set is public"


def test_private_keys_alone_pass_the_threshold_selection(tmp_path) -> None:
    private = _register(tmp_path, public_dept=False)
    plan = compile_query("SELECT dept FROM visits GROUP BY dept", private, epsilon=1.0)
    assert plan.epsilon == 1.0 and plan.delta == pytest.approx(private.get("visits").policy.default_delta)
    (selection,) = plan.primitives
    assert plan.selection.primitive == selection.id and selection.internal and selection.kind == "units"
    assert plan.selection.epsilon == 1.0, "the whole epsilon goes to the selection"
    # units per department: a = persons 1, 2; b = persons 1, 3, 4
    assert {k: v[selection.id] for k, v in exact_primitives(plan).items()} == {("a",): 2, ("b",): 3}
    assert any(n.key == "private_keys.units" for n in plan.notes)


@pytest.mark.parametrize(
    ("distinct", "grouped"),
    [
        ("SELECT DISTINCT dept FROM visits", "SELECT dept FROM visits GROUP BY dept"),
        (
            "SELECT DISTINCT dept, age // 10 AS decade FROM visits WHERE amount > 0",
            "SELECT dept, age // 10 AS decade FROM visits WHERE amount > 0 GROUP BY 1, 2",
        ),
    ],
)
def test_select_distinct_is_the_key_only_group_by(tmp_path_factory, distinct, grouped) -> None:
    private = _register(tmp_path_factory.mktemp("distinct"), public_dept=False)
    a, b = compile_query(distinct, private, epsilon=1.0), compile_query(grouped, private, epsilon=1.0)
    assert (a.aggregate_sql, a.primitives, a.selection, a.output_sql) == (
        b.aggregate_sql,
        b.primitives,
        b.selection,
        b.output_sql,
    )


# -- MIN and MAX: DP quantiles near the extremes ------------------------------------------------


def test_min_and_max_are_quantiles_near_the_extremes(catalog) -> None:
    plan = compile_query("SELECT MIN(amount), MAX(amount), MEDIAN(amount) FROM visits", catalog, epsilon=1.0)
    quantiles = [p for p in plan.primitives if p.kind == "quantile"]
    assert [p.alpha for p in quantiles] == [0.01, 0.99, 0.5]
    counts = [p for p in plan.primitives if p.kind == "count"]
    assert len(counts) == 1 and counts[0].internal, "one count of the values serves all three intervals"
    values = exact_primitives(plan)[()]
    # the same histogram of clamped values as MEDIAN's: 10, 20, 300 -> 100, 50, -5 -> 0 (NULL skipped)
    expected = {round((v - quantiles[0].lo) / quantiles[0].step): 1 for v in (10.0, 20.0, 100.0, 50.0, 0.0)}
    assert all(values[p.id] == expected for p in quantiles)
    assert [n.key for n in plan.notes if n.key == "extremes"] == ["extremes"], "the release says what MIN/MAX are"


def test_the_interval_of_min_reaches_the_lower_bound(catalog) -> None:
    """The exact MIN lies between the lower bound and the 1% quantile: its interval runs from the
    bound to the upper end of the quantile's; MAX symmetrically."""
    plan = compile_query("SELECT MIN(amount) AS lo, MAX(amount) AS hi FROM visits", catalog, epsilon=1.0)
    for row in _release(plan, 20):
        assert row["__lo_0"] == 0.0 and row["__hi_1"] == 100.0, row
        assert row["__lo_0"] <= row["lo"] <= row["__hi_0"] and row["__lo_1"] <= row["hi"] <= row["__hi_1"], row


def _release(plan, times: int) -> list[dict]:
    """`times` releases of one plan, as the worker runs them."""
    from sandbox.engine.execute import run_plan
    from sandbox.engine.lockdown import open_locked_connection
    from sandbox.engine.worker import Limits

    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        return [row for _ in range(times) for row in run_plan(con, plan)["table"].to_pylist()]
    finally:
        con.close()


def test_the_quantile_near_zero_has_one_best_candidate() -> None:
    """Why 0.01 and not 0: at 0 every candidate at or below the smallest value scores best (ties),
    so the mechanism would pick anywhere between the bound and the minimum."""
    from sandbox import privacy

    hist = [0] * 50 + [1] * 100 + [0] * 50  # values at candidates 50..149
    at_zero = privacy.quantile_scores(hist, 0.0)
    assert at_zero[:51] == [0] * 51, "51 candidates tie at 0"
    near = privacy.quantile_scores(hist, 0.01)
    assert near.index(min(near)) == 51 and near.count(min(near)) == 1, "one best: 1 value of 100 below it"


# -- CORR, COVAR_*, REGR_*: noisy sums of centred products -------------------------------------

PAIRED_SQL = (
    "SELECT CORR(score, amount) AS r, COVAR_SAMP(score, amount) AS cs, COVAR_POP(amount, score) AS cp, "
    "REGR_SLOPE(score, amount) AS b, REGR_INTERCEPT(score, amount) AS a, REGR_COUNT(score, amount) AS n FROM visits"
)


def test_sums_of_centred_products_by_hand(catalog) -> None:
    """Pairs with both values present: (10, 1), (20, 3), (300 -> 100, 2), (-5 -> 0, 4); u = amount
    - 50 in {-40, -30, 50, -50}, v = score - 5 in {-4, -2, -3, -1}. One set of six sums serves
    all six aggregates, whichever order their arguments come in."""
    plan = compile_query(PAIRED_SQL, catalog, epsilon=1.0)
    assert {p.kind for p in plan.primitives} == {"moment"} and len(plan.primitives) == 6
    assert all(p.epsilon == pytest.approx(1 / 6) for p in plan.primitives)
    values = exact_primitives(plan)[()]
    by_powers = {p.powers: values[p.id] * p.step for p in plan.primitives}
    assert all((p.column, p.other, p.shift, p.other_shift) == ("amount", "score", 50, 5) for p in plan.primitives)
    assert by_powers == {(0, 0): 4, (1, 0): -70, (0, 1): -10, (1, 1): 120, (2, 0): 7500, (0, 2): 30}


def test_sensitivity_is_max_rows_times_the_largest_product(catalog) -> None:
    """|u| <= 50 on a grid of 2**-14 (the doubles' grid keeps 50 within 2**20 steps), |v| <= 5,
    |u v| <= 250, u^2 <= 2500, v^2 <= 25; max_rows 3."""
    plan = compile_query(PAIRED_SQL, catalog, epsilon=1.0)
    expected = {(0, 0): 1, (1, 0): 50, (0, 1): 5, (1, 1): 250, (2, 0): 2500, (0, 2): 25}
    for p in plan.primitives:
        largest = expected[p.powers]
        assert p.step == (1.0 if p.powers == (0, 0) else 2.0 ** math.ceil(math.log2(largest / 2**20)))
        assert p.sensitivity == 3 * round(largest / p.step)


@pytest.mark.parametrize(
    ("x", "y", "clamped", "present"),
    [
        (
            "amount",
            "score",
            "LEAST(GREATEST(amount, 0), 100) AS x, LEAST(GREATEST(score, 0), 10) AS y",
            "amount IS NOT NULL AND score IS NOT NULL",
        ),
        # expressions with derived bounds: the analyst's clamp [0, 50], and a CASE in [0, 1] that is
        # never NULL (a missing score is 0)
        (
            "LEAST(GREATEST(amount, 0), 50)",
            "CASE WHEN score > 2 THEN 1 ELSE 0 END",
            "LEAST(GREATEST(amount, 0), 50) AS x, CASE WHEN score > 2 THEN 1 ELSE 0 END AS y",
            "amount IS NOT NULL",
        ),
    ],
    ids=["columns", "expressions"],
)
def test_released_formulas_are_duckdbs_on_exact_sums(catalog, x, y, clamped, present) -> None:
    """Post-processing of the exact sums gives DuckDB's own CORR, COVAR_SAMP, COVAR_POP,
    REGR_SLOPE, REGR_INTERCEPT and REGR_COUNT of the clamped pairs."""
    sql = (
        f"SELECT CORR({y}, {x}) AS r, COVAR_SAMP({y}, {x}) AS cs, COVAR_POP({x}, {y}) AS cp, "
        f"REGR_SLOPE({y}, {x}) AS b, REGR_INTERCEPT({y}, {x}) AS a, REGR_COUNT({y}, {x}) AS n FROM visits"
    )
    plan = compile_query(sql, catalog, epsilon=1.0)
    values = exact_primitives(plan)[()]
    con = duckdb.connect()
    columns = ", ".join(f"CAST({values[p.id] * p.step!r} AS DOUBLE) AS {p.id}" for p in plan.primitives)
    con.execute(f"CREATE TABLE released AS SELECT {columns}, false AS __suppressed")
    released = dict(zip([d[0] for d in con.execute(plan.output_sql).description], con.fetchone(), strict=True))
    # only the pairs present: DuckDB's GREATEST(NULL, 0) is 0, which would make up a pair
    pairs = f"SELECT {clamped} FROM read_parquet('{catalog.get('visits').parquet_path}') WHERE {present}"
    exact = con.execute(
        "SELECT CORR(y, x), COVAR_SAMP(y, x), COVAR_POP(x, y), REGR_SLOPE(y, x), REGR_INTERCEPT(y, x), "
        f"REGR_COUNT(y, x) FROM ({pairs})"
    ).fetchone()
    for name, truth in zip(["r", "cs", "cp", "b", "a", "n"], exact, strict=True):
        assert released[name] == pytest.approx(truth, rel=1e-12), name
    for i, name in enumerate(["r", "cs", "cp", "b", "a", "n"]):
        lo, hi = released[f"__lo_{i}"], released[f"__hi_{i}"]
        assert lo is None or lo <= released[name] + 1e-9, name
        assert hi is None or released[name] <= hi + 1e-9, name


def test_corr_is_clipped_to_what_is_possible(catalog) -> None:
    """A noisy correlation outside [-1, 1] is clipped (post-processing), and so is its interval;
    a covariance to the product of the half-ranges."""
    sql = "SELECT CORR(score, amount) AS r, COVAR_POP(score, amount) AS c FROM visits"
    plan = compile_query(sql, catalog, epsilon=0.01)
    for row in _release(plan, 30):
        assert row["r"] is None or -1 <= row["r"] <= 1
        assert -1 <= row["__lo_0"] <= row["__hi_0"] <= 1
        assert -250 <= row["c"] <= 250, "|covariance| <= 50 x 5"


@pytest.mark.parametrize(
    ("sql", "expect"),
    [
        ("SELECT CORR(amount, dept) FROM visits", "needs a number"),
        ("SELECT COVAR_POP(amount, amount / age) FROM visits", "no public bounds"),
        ("SELECT CORR(amount, pid) FROM visits", "identifier"),
    ],
)
def test_paired_aggregates_need_two_bounded_columns(catalog, sql, expect) -> None:
    from sandbox.errors import SQLRejected

    with pytest.raises(SQLRejected, match=expect):
        compile_query(sql, catalog, epsilon=1.0)


def test_post_processing_of_sums_of_products_never_fails(catalog) -> None:
    """Whatever the noise makes of the six sums (a negative count, a negative sum of squares, a
    variance whose interval lies below 0), the released values and intervals are computed without
    an error (DuckDB's SQRT fails on a negative number): every combination of extreme values."""
    import itertools

    plan = compile_query(PAIRED_SQL, catalog, epsilon=1.0)
    ids = [p.id for p in plan.primitives]
    extremes = (-1e12, -3.0, 0.0, 2.0, 1e12)
    rows = ", ".join(f"({', '.join(map(repr, combo))})" for combo in itertools.product(extremes, repeat=len(ids)))
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE released AS SELECT {', '.join(f'CAST(c{i} AS DOUBLE) AS {pid}' for i, pid in enumerate(ids))}, "
        f"false AS __suppressed FROM (VALUES {rows}) AS v({', '.join(f'c{i}' for i in range(len(ids)))})"
    )
    names = [d[0] for d in con.execute(plan.output_sql).description]
    result = [dict(zip(names, row, strict=True)) for row in con.fetchall()]
    assert len(result) == len(extremes) ** len(ids)
    corr = [row["r"] for row in result if row["r"] is not None]
    assert corr and all(-1 <= r <= 1 for r in corr)
    ends = [row[f"__{end}_{i}"] for row in result for i in range(6) for end in ("lo", "hi")]
    assert not [e for e in ends if e is not None and e != e], "no NaN end (SQRT of a negative variance is NaN)"
