"""Each construct the Spark rendering rewrites, on edge values, gives DuckDB's answer.

One small table of edge values (signed zeros, NaN, infinities, integer extremes, dates at the
ends of years 1-9999, text that needs trimming or escaping); each expression is written as the
compiler renders it for DuckDB, run on DuckDB and, rendered by compiler/dialects/spark.py, on
Spark; every row's value must be the same (doubles by their bits; NaN as NaN)."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sandbox.compiler.dialects.spark import _render
from sandbox.engine.spark_backend import SparkBackend

ROWS = """
SELECT * FROM (VALUES
 (1, DATE '2024-01-07', TIMESTAMP '2024-01-07 00:30:05.5', 7.5, 2.0, 7, 2, 'hello'),
 (2, DATE '2024-12-30', TIMESTAMP '2024-12-31 12:00:00', -7.5, -0.0, -7, 0, ' a b '),
 (3, DATE '0001-01-01', TIMESTAMP '0001-01-01 23:59:59.999999', 0.0, 0.0, -9223372036854775808, -1, ''),
 (4, DATE '9999-12-31', TIMESTAMP '9999-12-31 13:14:15', -0.0, 3.0, 9223372036854775807, 10, 'a\\b%_'),
 (5, DATE '2021-01-03', TIMESTAMP '2021-01-03 11:59:59', CAST('nan' AS DOUBLE), 1.0, 15, -3, 'ß ẞ'),
 (6, DATE '2020-02-29', TIMESTAMP '2020-02-29 00:00:00', CAST('inf' AS DOUBLE), CAST('-inf' AS DOUBLE), -15, 3,
  chr(160) || 'x' || chr(12288)),
 (7, DATE '1900-03-01', NULL, -0.4, CAST('nan' AS DOUBLE), 9223372036854775804, 5, NULL),
 (8, NULL, TIMESTAMP '1970-01-01 00:00:00', 2.5, -1.0, 4000000000000000000, 7, 'O''Brien'),
 (9, DATE '2016-01-01', TIMESTAMP '2016-01-01 01:00:00', 1e308, 1e-308, 5000000000000000000, 11, 'xyz '),
 (10, DATE '2023-01-01', TIMESTAMP '2023-01-01 00:00:00', -1.0, CAST('inf' AS DOUBLE), 1, 1, 'abc'),
 (11, NULL, NULL, NULL, 0.0, NULL, 0, NULL),
 (12, NULL, NULL, 1.0, NULL, 1, NULL, NULL)
) AS t(id, d, ts, x, y, i, j, s)
"""
SCHEMA = {"id": "INTEGER", "d": "DATE", "ts": "TIMESTAMP", "x": "DOUBLE", "y": "DOUBLE", "i": "BIGINT",
          "j": "BIGINT", "s": "VARCHAR"}  # fmt: skip
EXPRESSIONS = [
    "TRY(i + j)", "TRY(i - j)", "TRY(i * j)", "TRY(-i)", "TRY(ABS(i))", "TRY(i // j)", "TRY(i % j)",
    "i // 3", "TRY(ROUND(i, -1))", "TRY(ROUND(i, -19))", "TRY(ROUND(i, -30))",
    "x / y", "x / 2.0", "x % y", "TRY_CAST(x AS BIGINT)", "TRY_CAST(x AS INTEGER)", "TRY_CAST(y * 1e18 AS BIGINT)",
    "FLOOR(x)", "CEIL(x)", "ROUND(x)", "SIGN(x)", "SIGN(i)", "SQRT(x)", "SQRT(y)", "LEAST(x, y)", "GREATEST(x, y)",
    "EXTRACT(YEAR FROM d)", "EXTRACT(DAYOFWEEK FROM d)", "EXTRACT(ISODOW FROM d)", "EXTRACT(WEEK FROM d)",
    "EXTRACT(DAYOFYEAR FROM d)", "EXTRACT(ISOYEAR FROM d)", "EXTRACT(QUARTER FROM ts)", "EXTRACT(HOUR FROM ts)",
    "EXTRACT(MINUTE FROM ts)", "EXTRACT(SECOND FROM ts)", "YEAR(d) * 1000000000",
    "CAST(date_trunc('WEEK', d) AS VARCHAR)", "CAST(date_trunc('MONTH', ts) AS VARCHAR)", "CAST(d AS VARCHAR)",
    "CAST(ts AS VARCHAR)", "strftime(ts, '%Y-%m-%d %H:%M:%S|%j|%y|%w|%u|%V|%G|%U|%W|%I|%p|%b|%B|%a|%A|%%')",
    "strftime(d, '%Y')", "strftime(d, '%%Y')", "strftime(d, 'year')", "strftime(ts, '%p')", "SUBSTRING(s, 0, 3)",
    "SUBSTRING(s, -2, 5)", "SUBSTRING(s, 2)", "TRIM(s)", "LENGTH(s)",
    "s LIKE 'a\\b%'", "s LIKE '%b %'", "s LIKE '_'", "starts_with(s, 'a')", "COALESCE(s, 'none')",
]  # fmt: skip


@pytest.fixture(scope="module")
def edge_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dialect") / "edges.parquet"
    duckdb.sql(f"COPY ({ROWS}) TO '{path}' (FORMAT parquet)")
    return path


@pytest.fixture(scope="module")
def edges(edge_file: Path, spark_session: Any) -> str:
    """The file as the backend reads an artefact: through a temporary view (spark_backend.py)."""
    SparkBackend(spark_session).create_views({"edges_view": str(edge_file)})
    return "edges_view"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expression_means_what_it_means_in_duckdb(
    expression: str, edge_file: Path, edges: str, spark_session: Any
) -> None:
    sql = f'SELECT id, {expression} AS v FROM "edges".main.data'
    con = duckdb.connect()
    try:
        expected = dict(con.execute(sql.replace('"edges".main.data', f"'{edge_file}'")).fetchall())
    finally:
        con.close()
    rendered = _render(sql, {"edges": SCHEMA}, {"edges": edges})
    got = {row[0]: row[1] for row in spark_session.sql(rendered).collect()}
    wrong = {k: (expected[k], got.get(k)) for k in expected if not _same(expected[k], got.get(k))}
    assert not wrong, f"{expression}: DuckDB vs Spark differ on rows {wrong}\n{rendered}"


REFUSED = {
    "EXP(y)": "Java's math library",
    "LN(x)": "Java's math library",
    "LOG(2, x)": "Java's math library",
    "POWER(x, y)": "Java's math library",
    "ROUND(x, 2)": "round some values differently",
    "CAST(x AS VARCHAR)": "spell the same number differently",
    "TRY_CAST(s AS BIGINT)": "read numbers and dates in text differently",
    "UPPER(s)": "map Unicode case differently",
    "s ILIKE 'a%'": "map Unicode case differently",
}


@pytest.mark.parametrize("expression", REFUSED)
def test_what_spark_cannot_mean_is_refused(expression: str) -> None:
    from sandbox.compiler.dialects.spark import Unsupported

    with pytest.raises(Unsupported) as refused:
        _render(f'SELECT {expression} AS v FROM "edges".main.data', {"edges": SCHEMA}, {"edges": "/x"})
    assert REFUSED[expression] in refused.value.reason and refused.value.fix.endswith(".")


def test_try_cast_stays_try_cast() -> None:
    """sqlglot writes a TryCast without `safe` as CAST for Spark; ours always says TRY_CAST."""
    rendered = _render('SELECT TRY_CAST(x AS INTEGER) AS v FROM "edges".main.data', {"edges": SCHEMA}, {"edges": "/x"})
    assert "TRY_CAST(" in rendered and " CAST(RINT" not in rendered.upper()


def test_a_dataset_registered_again_is_read_through_a_new_view(tmp_path) -> None:
    """A session keeps each view's file listing; the artefact of a registration that replaced it
    (same location, new file) must be read through a view of its own."""
    from sandbox.catalog import Catalog
    from sandbox.compiler import compile_query
    from sandbox.compiler.dialects.spark import dataset_schema, dataset_version, render_spark
    from sandbox.policy import load_policy
    from tests.conftest import POLICIES

    file = POLICIES / "pums_null.yaml"
    catalog = Catalog(tmp_path)
    policy = load_policy(file)
    views = []
    for max_rows in (4, 2):
        catalog.register(
            policy.model_copy(update={"privacy_unit": policy.privacy_unit.model_copy(update={"max_rows": max_rows})}),
            file,
        )
        dataset = catalog.get("pums_null")
        plan = compile_query("SELECT COUNT(*) FROM pums_null", catalog, epsilon=1.0)
        rendered = render_spark(
            plan,
            {"pums_null": dataset_schema(dataset)},
            {"pums_null": str(dataset.artefact_path)},
            {"pums_null": dataset_version(dataset)},
        )
        ((view, location),) = rendered.views.items()
        assert location == str(dataset.artefact_path) and f"`{view}`" in rendered.aggregate
        views.append(view)
    assert views[0] != views[1]
