"""Names in GROUP BY, HAVING and ORDER BY bind as DuckDB binds them (a name that is both a
column and an output alias): the released groups are the ones DuckDB returns for the same query
over a table holding each public key combination once, and what DuckDB refuses, we refuse."""

from __future__ import annotations

import itertools

import duckdb
import pytest

from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from sandbox.errors import SQLRejected

CASES = [
    "SELECT sex AS gender, educ AS sex, COUNT(*) AS n FROM {t} GROUP BY sex, educ",
    "SELECT sex AS gender, educ AS sex, COUNT(*) AS n FROM {t} GROUP BY sex, educ HAVING sex = '1'",
    "SELECT sex AS educ, educ AS sex, COUNT(*) AS n FROM {t} GROUP BY sex, educ HAVING educ = '1'",
    "SELECT sex AS educ, COUNT(*) AS n FROM {t} GROUP BY sex HAVING educ = '1'",
    "SELECT educ AS sex, COUNT(*) AS n FROM {t} GROUP BY educ HAVING sex = '3'",
    "SELECT educ AS e, COUNT(*) AS n FROM {t} GROUP BY e",
    "SELECT sex AS educ, educ AS sex, COUNT(*) AS n FROM {t} GROUP BY 1, 2 ORDER BY sex, educ",
    # text codes read as conditions, as DuckDB reads '0'/'1'
    "SELECT married, COUNT(*) AS n FROM {t} GROUP BY married HAVING married",
    "SELECT age, married, COUNT(*) AS n FROM {t} GROUP BY age, married HAVING NOT married",
    "SELECT sex, COUNT(*) AS n FROM {t} GROUP BY sex HAVING NOT (sex = TRUE)",
    "SELECT sex AS educ, COUNT(*) AS n FROM {t} GROUP BY educ",  # both refuse: sex is not grouped
    "SELECT sex AS married, COUNT(*) AS n FROM {t} GROUP BY married",  # both refuse
]


@pytest.fixture(scope="module")
def keys_table(demo_catalog):
    policy = demo_catalog.get("pums_pid").policy
    names = ["sex", "educ", "married"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (sex VARCHAR, educ VARCHAR, married VARCHAR, age INTEGER)")
    ages = range(int(policy.columns["age"].bounds[0]), int(policy.columns["age"].bounds[1]) + 1)
    rows = list(itertools.product(*(policy.columns[n].keys for n in names), ages))
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    yield con
    con.close()


@pytest.mark.parametrize("sql", CASES)
def test_names_bind_as_in_duckdb(sql, demo_catalog, keys_table) -> None:
    try:
        expected = keys_table.execute(sql.format(t="t")).fetchall()
    except duckdb.Error:
        with pytest.raises(SQLRejected):
            compile_query(sql.format(t="pums_pid"), demo_catalog, epsilon=1.0)
        return
    plan = compile_query(sql.format(t="pums_pid"), demo_catalog, epsilon=1.0)
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        table = run_plan(con, plan)["table"]
    finally:
        con.close()
    keys = [i for i, c in enumerate(plan.outputs) if c.kind == "key"]
    rows = table.to_pylist()
    released = [tuple(list(row.values())[i] for i in keys) for row in rows]
    wanted = [tuple(row[i] for i in keys) for row in expected]
    if "ORDER BY" in sql:
        assert released == wanted
    else:
        assert sorted(released) == sorted(wanted)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT educ, COUNT(*) AS n FROM pums_pid GROUP BY educ HAVING educ > 2",
        "SELECT sex AS e, educ AS sex, COUNT(*) AS n FROM pums_pid GROUP BY sex, educ HAVING sex > 0 AND e > 0",
    ],
)
def test_text_codes_compare_as_numbers_in_having_as_in_where(sql, demo_catalog) -> None:
    """PUMS codes are text whose public keys are numbers: HAVING educ > 2 reads them as numbers as
    WHERE does (the released key was compared as text with 2, which DuckDB refuses: every such
    query failed after its noise was drawn)."""
    plan = compile_query(sql, demo_catalog, epsilon=1.0)
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        rows = run_plan(con, plan)["table"].to_pylist()
    finally:
        con.close()
    assert rows
    first = [list(row.values())[0] for row in rows]
    if "educ > 2" in sql:
        assert all(int(v) > 2 for v in first)
        assert len(first) == sum(int(k[0]) > 2 for k in plan.public_keys), "every code above 2, '10' too"
    else:
        assert set(first) == {"1"}, "sex is the grouped column, e its alias: both read as numbers"


def test_a_text_code_compared_with_true_counts_the_ones(demo_catalog) -> None:
    """WHERE sex = TRUE reads the code '1' as TRUE (TRY_CAST AS BOOLEAN: any other text is NULL,
    never an error), exactly the rows of WHERE sex = '1'."""
    from tests.support.exact import exact_primitives

    as_boolean = compile_query("SELECT COUNT(*) FROM pums_null WHERE sex = TRUE AND married", demo_catalog, epsilon=1)
    as_text = compile_query("SELECT COUNT(*) FROM pums_null WHERE sex = '1' AND married = '1'", demo_catalog, epsilon=1)
    assert "TRY_CAST" in as_boolean.aggregate_sql
    assert exact_primitives(as_boolean) == exact_primitives(as_text)
