"""The SQL the compiler renders means what the user wrote, and cannot fail on any value.

On a fixture of awkward rows (text that is and is not a number, dates at the ends of DuckDB's
range, 64-bit extremes) the generated SQL runs as the worker runs it and gives the exact answer
computed independently here. Dates outside 0001-01-01 .. 9999-12-31 and +-infinity are stored
as NULL at registration (catalog._stored): there even TRY cannot stop DuckDB's date functions
from failing."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from sandbox.policy import Policy
from tests.support.exact import exact_primitives

ROWS = [  # pid, code, day, big, small
    (1, "12", "2024-01-31", 1),
    (2, "abc", "infinity", 9223372036854775807),
    (3, "", "9999-12-31", -9223372036854775808),
    (4, "007", "5881580-07-10", 7),
    (5, None, "-infinity", None),
    (6, "12", "0001-01-01", 42),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    data_dir = tmp_path_factory.mktemp("rendering")
    con = duckdb.connect()
    con.execute("CREATE TABLE t (pid BIGINT, code VARCHAR, day DATE, big BIGINT)")
    con.executemany("INSERT INTO t VALUES (?, ?, CAST(? AS DATE), ?)", ROWS)
    con.execute("ALTER TABLE t ADD COLUMN small INTEGER")
    con.execute("UPDATE t SET small = CASE pid WHEN 1 THEN -2147483648 WHEN 2 THEN 5 END")
    con.execute(f"COPY t TO '{data_dir / 't.parquet'}' (FORMAT parquet)")
    policy = Policy.model_validate(
        {
            "name": "t",
            "title": "t",
            "description": "d",
            "owner": "o",
            "source": {"kind": "parquet", "location": "{data_dir}/t.parquet"},
            "privacy_unit": {"column": "pid", "max_rows": 1},
            "columns": {
                "pid": {"role": "identifier", "type": "BIGINT"},
                "code": {"role": "dimension", "type": "VARCHAR", "nullable": True},
                "day": {"role": "dimension", "type": "DATE", "nullable": True},
                "big": {"role": "dimension", "type": "BIGINT", "nullable": True},
                "small": {"role": "dimension", "type": "INTEGER", "nullable": True},
            },
        }
    )
    catalog = Catalog(data_dir)
    catalog.register(policy)
    return catalog


def _count(catalog: Catalog, where: str) -> int:
    plan = compile_query(f"SELECT COUNT(*) FROM t WHERE {where}", catalog, epsilon=1.0)
    return exact_primitives(plan)[()]["p0"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("CAST(code AS INTEGER) = 12", 2),  # 'abc' and '' are NULL under TRY_CAST, never an error
        ("CAST(code AS INTEGER) = 7", 1),
        ("TRY_CAST(code AS DATE) IS NULL", 6),
        ("big * 2 > 0", 3),  # 9223372036854775807 * 2 overflows: NULL for that row, not an error
        ("big + 1 > 0", 3),
        ("-big < 0", 4),
        ("ABS(big) >= 0", 4),
        ("big // 0 IS NULL", 6),
        ("-LEAST(small, small) IS NULL", 4),  # found by fuzzing: LEAST keeps INTEGER, and -(-2^31) overflowed
        ("big % (big - big) IS NULL", 6),
        ("FLOOR(big) = big", 5),  # found by fuzzing: DuckDB's FLOOR(BIGINT) is a DOUBLE, cast back it failed at 2^63
        ("CEIL(big) = big AND CEIL(-big) = -big", 4),
        ("ABS(FLOOR(9223372036854775807)) > 0", 6),
        ("day >= '2024-01-01'", 2),
        ("day IS NULL", 3),  # infinity, -infinity and the year 5881580 are stored as NULL
        ("date_trunc('week', day) IS NULL", 3),
        ("YEAR(day) = 9999", 1),
        ("CAST(day AS TIMESTAMP) IS NULL", 3),
    ],
)
def test_partial_operations_give_null_not_errors(catalog, where, expected) -> None:
    assert _count(catalog, where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [  # integers meet a fractional or huge constant: compared as DOUBLE, as DuckDB does (not truncated)
        ("big < 1.5", 2),  # was read as big < 1
        ("big = 1.5", 0),
        ("big IN (1.5, 7)", 1),
        ("big BETWEEN 1.5 AND 42.5", 2),
        ("COALESCE(small, 2.5) > 2.4", 5),
        # found by fuzzing: rendered CAST(1e308 AS BIGINT), failed
        ("small = (IF(TRUE, 1e308, small) + 4294967296)", 0),
        ("big < 1e30", 5),
    ],
)
def test_integers_meet_fractional_constants_as_duckdb_does(catalog, where, expected) -> None:
    assert _count(catalog, where) == expected


def test_parentheses_keep_their_meaning(catalog) -> None:
    plan = compile_query(
        "SELECT (big + 1) * 2 AS k, COUNT(*) / (COUNT(*) + 1) AS x FROM t WHERE big BETWEEN 0 AND 100 "
        "GROUP BY (big + 1) * 2",
        catalog,
        epsilon=1.0,
    )
    keys = {k[0] for k in exact_primitives(plan)}
    assert keys == {4, 16, 86}, "(big + 1) * 2, not big + 1 * 2"
    released = pa.table({"__k0": [4], "p0": [9.0], "__suppressed": [False]})
    con = duckdb.connect()
    con.register("released", released)
    assert con.execute(plan.output_sql).fetchone()[1] == pytest.approx(9.0 / 10.0), "COUNT / (COUNT + 1)"


def test_out_of_range_dates_are_stored_as_null_and_counted(catalog) -> None:
    assert catalog.get("t").manifest["out_of_range"] == {"day": 3}


def test_date_keys_leave_the_engine_as_text(catalog) -> None:
    """Python's dates cannot hold all of DuckDB's (infinity once arrived as 9999-12-31): keys
    travel as text and are converted back after the noise."""
    plan = compile_query("SELECT day, COUNT(*) FROM t GROUP BY day", catalog, epsilon=1.0)
    groups = exact_primitives(plan)
    assert {k[0] for k in groups} == {"2024-01-31", "9999-12-31", "0001-01-01", None}


def test_release_converts_date_keys_back(catalog) -> None:
    plan = compile_query(
        "SELECT day, COUNT(*) FROM t WHERE day = '2024-01-31' GROUP BY day", catalog, epsilon=1.0, delta=1e-3
    )
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        table = run_plan(con, plan)["table"]
    finally:
        con.close()
    assert table.schema.field("day").type in (pa.date32(), pa.null())
