"""Every connector against real sources: files written by their own libraries, a DuckDB file,
and the PostgreSQL server the suite starts. The same table goes through each kind and must
come back with the same rows and types; errors must say what is wrong and how to fix it."""

from __future__ import annotations

import csv
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

import connectors.postgres
from connectors import Snapshot, check_schema, get_connector
from connectors.parquet import parquet_glob
from sandbox.errors import ConnectorError, SchemaMismatch
from sandbox.policy import Policy

PUMS = Path(__file__).parents[2].parent / "shared/data/pums"

Columns = dict[str, str]  # name -> DuckDB type
Rows = Sequence[tuple[Any, ...]]

PEOPLE: Columns = {
    "person_id": "INTEGER",
    "district": "VARCHAR",
    "age": "INTEGER",
    "income": "DOUBLE",
    "born": "DATE",
    "seen": "TIMESTAMP",
    "active": "BOOLEAN",
}
ROWS: Rows = [
    (1, "Tong'an", 34, -1250.5, date(1990, 1, 31), datetime(2024, 5, 1, 8, 30), True),
    (2, "思明", None, 0.0, None, None, False),
    (3, None, -7, 99999.25, date(1900, 3, 1), datetime(2000, 1, 1, 0, 0, 0, 500), None),
    (4, 'say "hi", then go', 0, None, date(2024, 2, 29), datetime(1970, 1, 1), True),
]

ARROW = {
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}
PG_TYPES = {
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "BOOLEAN": "boolean",
}


# -- writing one table in each source format -----------------------------------------------
# A writer stores (columns, rows) and returns (location, source.table).
Writer = Callable[[Columns, Rows], tuple[str, str | None]]


def write_parquet(tmp_path: Path, columns: Columns, rows: Rows) -> tuple[str, str | None]:
    schema = pa.schema([(name, ARROW[type_]) for name, type_ in columns.items()])
    path = tmp_path / "people.parquet"
    pq.write_table(
        pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows], schema), path
    )
    return str(path), None


def write_csv(tmp_path: Path, columns: Columns, rows: Rows) -> tuple[str, str | None]:
    def field(value: Any) -> str:
        if value is None:
            return ""
        return str(value).lower() if isinstance(value, bool) else str(value)

    path = tmp_path / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([field(v) for v in row] for row in rows)
    return str(path), None


def write_duckdb(tmp_path: Path, columns: Columns, rows: Rows) -> tuple[str, str | None]:
    path = tmp_path / "city.duckdb"
    with duckdb.connect(path) as con:
        con.execute(f"CREATE TABLE people ({', '.join(f'{n} {t}' for n, t in columns.items())})")
        if rows:
            con.executemany(f"INSERT INTO people VALUES ({', '.join('?' * len(columns))})", rows)
    return str(path), "people"


def create_pg_table(url: str, name: str, columns: dict[str, str], rows: Rows) -> None:
    """`columns` maps names to PostgreSQL types (trusted test text)."""
    schema_name, _, table = name.rpartition(".")
    ident = sql.Identifier(schema_name, table) if schema_name else sql.Identifier(table)
    with psycopg.connect(url) as conn:
        if schema_name:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name))
            )
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(
                ident,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                    for n, t in columns.items()
                ),
            )
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES ({})").format(
                    ident, sql.SQL(", ").join(sql.Placeholder() * len(columns))
                ),
                rows,
            )


def write_postgres(url: str, columns: Columns, rows: Rows) -> tuple[str, str | None]:
    table = f"people_{uuid.uuid4().hex[:8]}"
    create_pg_table(url, table, {n: PG_TYPES[t] for n, t in columns.items()}, rows)
    return url, table


KINDS = ["parquet", "csv", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
COPYING_KINDS = ["csv", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def write(request: pytest.FixtureRequest, tmp_path: Path) -> Writer:
    """The writer for the test's `kind`; only PostgreSQL tests start the server."""
    kind: str = request.node.callspec.params["kind"]
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return lambda columns, rows: write_postgres(url, columns, rows)
    writers = {"parquet": write_parquet, "csv": write_csv, "duckdb": write_duckdb}
    return lambda columns, rows: writers[kind](tmp_path, columns, rows)


def make_policy(kind: str, location: str, table: str | None, columns: Columns) -> Policy:
    return Policy.model_validate(
        {
            "name": "people",
            "title": "People",
            "description": "test table",
            "owner": "tests",
            "source": {"kind": kind, "location": location, "table": table},
            "privacy_unit": {"column": "person_id", "max_rows": 1},
            "columns": {
                name: {"role": "identifier" if name == "person_id" else "dimension", "type": type_}
                for name, type_ in columns.items()
            },
        }
    )


def snapshot(
    kind: str, location: str, table: str | None, columns: Columns, workdir: Path
) -> Snapshot:
    policy = make_policy(kind, location, table, columns)
    return get_connector(kind).snapshot(policy, location, workdir)


def read_back(snap: Snapshot) -> tuple[dict[str, str], list[tuple[Any, ...]]]:
    """Types and rows as the catalog would see them, read with DuckDB."""
    with duckdb.connect() as con:
        rel = con.sql("FROM read_parquet($files)", params={"files": parquet_glob(snap.parquet)})
        types = dict(zip(rel.columns, map(str, rel.types), strict=True))
        return types, rel.order("person_id").fetchall()


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_keeps_rows_and_types(kind: str, write: Writer, tmp_path: Path) -> None:
    location, table = write(PEOPLE, ROWS)
    snap = snapshot(kind, location, table, PEOPLE, tmp_path / "work")
    types, rows = read_back(snap)
    assert snap.schema == PEOPLE
    assert types == PEOPLE
    assert rows == list(ROWS)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_table_keeps_its_schema(kind: str, write: Writer, tmp_path: Path) -> None:
    location, table = write(PEOPLE, [])
    types, rows = read_back(snapshot(kind, location, table, PEOPLE, tmp_path / "work"))
    assert (types, rows) == (PEOPLE, [])


@pytest.mark.parametrize("kind", COPYING_KINDS)
def test_only_the_policys_columns_are_copied(kind: str, write: Writer, tmp_path: Path) -> None:
    location, table = write({**PEOPLE, "secret": "VARCHAR"}, [(*r, "do not copy") for r in ROWS])
    snap = snapshot(kind, location, table, PEOPLE, tmp_path / "work")
    assert list(read_back(snap)[0]) == list(PEOPLE)


def test_parquet_directory_is_read_in_place(tmp_path: Path) -> None:
    data = tmp_path / "people"
    (data / "district=a").mkdir(parents=True)
    write_parquet(data, PEOPLE, ROWS[:2])
    write_parquet(data / "district=a", PEOPLE, ROWS[2:])
    snap = snapshot("parquet", str(data), None, PEOPLE, tmp_path / "work")
    assert snap.parquet == data
    assert not (tmp_path / "work").exists()  # nothing copied
    assert read_back(snap)[1] == list(ROWS)


# -- the real PUMS files: codes stay text, empty fields are NULL, "0.0" is an integer --------
PUMS_COLUMNS = {
    "age": {"role": "measure", "type": "INTEGER", "bounds": [0, 100]},
    "sex": {"role": "dimension", "type": "VARCHAR", "keys": ["0", "1"]},
    "educ": {"role": "dimension", "type": "VARCHAR"},
    "race": {"role": "dimension", "type": "VARCHAR"},
    "income": {"role": "measure", "type": "INTEGER", "bounds": [0, 500000]},
    "married": {"role": "dimension", "type": "VARCHAR", "keys": ["0", "1"]},
    "pid": {"role": "identifier", "type": "INTEGER"},
}


@pytest.mark.parametrize(
    ("file", "rows", "has_nulls"), [("PUMS_null.csv", 1948, True), ("PUMS_pid.csv", 1000, False)]
)
def test_pums_csv(file: str, rows: int, has_nulls: bool, tmp_path: Path) -> None:
    location = str(PUMS / file)
    policy = Policy.model_validate(
        {
            "name": "pums",
            "title": "PUMS",
            "description": "census sample",
            "owner": "US Census Bureau",
            "source": {"kind": "csv", "location": location},
            "privacy_unit": {"column": "pid", "max_rows": 88},
            "columns": PUMS_COLUMNS,
        }
    )
    snap = get_connector("csv").snapshot(policy, location, tmp_path)
    assert snap.schema == {name: spec["type"] for name, spec in PUMS_COLUMNS.items()}
    with duckdb.connect() as con:
        count, null_ages, sexes, max_income = con.execute(
            "SELECT count(*), count(*) - count(age), list(DISTINCT sex ORDER BY sex), max(income)"
            " FROM read_parquet($f)",
            {"f": str(snap.parquet)},
        ).fetchone()
    assert count == rows
    assert (null_ages > 0) is has_nulls
    assert sexes == (["0", "1", None] if has_nulls else ["0", "1"])
    assert isinstance(max_income, int)


# -- schema mismatches -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param(
            {"person_id": "INTEGER", "age": "INTEGER"},
            ["t.csv: column 'district' declared in policy 'people' is missing", "person_id, age"],
            id="missing-column",
        ),
        pytest.param(
            {"person_id": "INTEGER", "district": "VARCHAR", "age": "VARCHAR"},
            ["column 'age' is VARCHAR in the data but INTEGER in policy 'people'",
             "change the policy's type or convert the source column"],
            id="wrong-type",
        ),
        pytest.param(
            {"person_id": "INTEGER", "district": "INTEGER", "age": "INTEGER"},
            ["column 'district' is INTEGER in the data but VARCHAR"],
            id="number-for-text",
        ),
    ],
)  # fmt: skip
def test_check_schema_rejects(schema: dict[str, str], expected: list[str]) -> None:
    policy = make_policy(
        "csv", "t.csv", None, {"person_id": "INTEGER", "district": "VARCHAR", "age": "INTEGER"}
    )
    with pytest.raises(SchemaMismatch) as info:
        check_schema(policy, schema, "t.csv")
    for part in expected:
        assert part in str(info.value)
    assert info.value.fields["dataset"] == "people"


@pytest.mark.parametrize(
    "schema",
    [
        {
            "person_id": "BIGINT",
            "age": "SMALLINT",
            "income": "DECIMAL(18,3)",
            "seen": "TIMESTAMP_NS",
        },
        {
            "person_id": "HUGEINT",
            "age": "TINYINT",
            "income": "INTEGER",
            "seen": "TIMESTAMP WITH TIME ZONE",
        },
    ],
)
def test_check_schema_accepts_compatible_types(schema: dict[str, str]) -> None:
    columns = {"person_id": "INTEGER", "age": "INTEGER", "income": "DOUBLE", "seen": "TIMESTAMP"}
    check_schema(make_policy("csv", "t.csv", None, columns), schema, "t.csv")


@pytest.mark.parametrize("kind", KINDS)
def test_missing_column_names_the_column_and_what_exists(
    kind: str, write: Writer, tmp_path: Path
) -> None:
    location, table = write(PEOPLE, ROWS)
    with pytest.raises(SchemaMismatch) as info:
        snapshot(kind, location, table, {**PEOPLE, "email": "VARCHAR"}, tmp_path / "work")
    message = str(info.value)
    assert "column 'email' declared in policy 'people' is missing from the data" in message
    assert "person_id, district, age, income, born, seen, active" in message
    assert info.value.fields["column"] == "email"


@pytest.mark.parametrize(
    "kind", ["parquet", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_wrong_type_in_typed_source(kind: str, write: Writer, tmp_path: Path) -> None:
    location, table = write({**PEOPLE, "age": "VARCHAR"}, [(*r[:2], "x", *r[3:]) for r in ROWS])
    with pytest.raises(SchemaMismatch) as info:
        snapshot(kind, location, table, PEOPLE, tmp_path / "work")
    assert "column 'age' is VARCHAR in the data but INTEGER in policy 'people'" in str(info.value)


# -- CSV values that do not fit the declared type ---------------------------------------------
@pytest.mark.parametrize(
    ("body", "error", "expected"),
    [
        pytest.param(
            "person_id,age\n1,34\n2,forty-two\n3,5\n4,old\n",
            SchemaMismatch,
            "column 'age' has values that are not INTEGER (line 3 and 1 more); fix the file",
            id="not-a-number",
        ),
        pytest.param(
            "person_id,age\n1,34\n2,35,extra\n",
            ConnectorError,
            "malformed CSV, too many columns (line 3); fix the file",
            id="too-many-fields",
        ),
    ],
)
def test_csv_bad_values_name_column_and_line_not_value(
    body: str, error: type[ConnectorError], expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(body)
    with pytest.raises(error) as info:
        snapshot(
            "csv", str(path), None, {"person_id": "INTEGER", "age": "INTEGER"}, tmp_path / "work"
        )
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "forty-two" not in message and "extra" not in message


# -- sources that are not there ---------------------------------------------------------------
def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(
        ConnectorError,
        match=r"unknown source kind 'excel'; use one of csv, duckdb, parquet, postgres",
    ):
        get_connector("excel")


@pytest.mark.parametrize("kind", ["parquet", "csv", "duckdb", "postgres"])
def test_builtin_kinds_register_themselves(kind: str) -> None:
    assert get_connector(kind).kind == kind


@pytest.mark.parametrize(
    ("kind", "setup", "expected"),
    [
        ("parquet", None, "no such Parquet file or directory; check source.location"),
        ("parquet", "empty-dir", "the directory holds no *.parquet files"),
        ("parquet", "not-data", "cannot be read as Parquet"),
        ("csv", None, "no such CSV file; check source.location"),
        ("duckdb", None, "no such DuckDB database file; check source.location"),
        ("duckdb", "not-data", "cannot be opened as a DuckDB database"),
    ],
)
def test_missing_or_unreadable_file(
    kind: str, setup: str | None, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "source"
    if setup == "empty-dir":
        path.mkdir()
    elif setup == "not-data":
        path.write_text("just some text\n")
    with pytest.raises(ConnectorError) as info:
        snapshot(kind, str(path), "people", PEOPLE, tmp_path / "work")
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_duckdb_missing_table_lists_the_tables(tmp_path: Path) -> None:
    location, _ = write_duckdb(tmp_path, PEOPLE, ROWS)
    with duckdb.connect(location) as con:
        con.execute("CREATE SCHEMA health; CREATE TABLE health.visits (person_id INTEGER)")
    with pytest.raises(ConnectorError) as info:
        snapshot("duckdb", location, "peopel", PEOPLE, tmp_path / "work")
    assert (
        "no table main.peopel; the tables are: health.visits, main.people; set source.table"
        in str(info.value)
    )


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_table_is_required(kind: str, tmp_path: Path) -> None:
    location = write_duckdb(tmp_path, PEOPLE, ROWS)[0] if kind == "duckdb" else "postgresql://h/db"
    with pytest.raises(ConnectorError, match=f"a {kind} source needs source.table"):
        snapshot(kind, location, None, PEOPLE, tmp_path / "work")


# -- PostgreSQL specifics ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["public.people", 'Odd "Schema".Mixed Case; DROP TABLE x'])
def test_postgres_table_names_are_quoted(
    table: str, fresh_postgres_db: str, tmp_path: Path
) -> None:
    create_pg_table(fresh_postgres_db, table, {n: PG_TYPES[t] for n, t in PEOPLE.items()}, ROWS)
    snap = snapshot("postgres", fresh_postgres_db, table, PEOPLE, tmp_path)
    assert read_back(snap)[1] == list(ROWS)


@pytest.mark.postgres
def test_postgres_missing_table_lists_the_tables(fresh_postgres_db: str, tmp_path: Path) -> None:
    create_pg_table(fresh_postgres_db, "people", {"person_id": "integer"}, [])
    create_pg_table(fresh_postgres_db, "health.visits", {"person_id": "integer"}, [])
    with pytest.raises(ConnectorError) as info:
        snapshot("postgres", fresh_postgres_db, "peopel", PEOPLE, tmp_path)
    assert "no table public.peopel (or the user may not read it)" in str(info.value)
    assert "the tables are: health.visits, public.people; set source.table" in str(info.value)


@pytest.mark.postgres
def test_postgres_streams_in_batches(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connectors.postgres, "BATCH_ROWS", 3)
    rows = [(i, f"d{i % 3}", i, float(i), None, None, i % 2 == 0) for i in range(10)]
    location, table = write_postgres(postgres_url, PEOPLE, rows)
    snap = snapshot("postgres", location, table, PEOPLE, tmp_path)
    assert pq.ParquetFile(snap.parquet).metadata.num_row_groups == 4
    assert read_back(snap)[1] == rows


@pytest.mark.postgres
def test_postgres_converts_compatible_types_to_the_policys(
    postgres_url: str, tmp_path: Path
) -> None:
    source = {
        "person_id": "bigint",
        "district": "varchar(20)",
        "age": "smallint",
        "income": "numeric(12,2)",
        "seen": "timestamptz",
    }
    rows = [(1, "Huli", 30, "1234.50", "2024-05-01 08:30:00+08"), (2, None, None, None, None)]
    table = f"wide_{uuid.uuid4().hex[:8]}"
    create_pg_table(postgres_url, table, source, rows)
    policy = {
        "person_id": "INTEGER",
        "district": "VARCHAR",
        "age": "BIGINT",
        "income": "DOUBLE",
        "seen": "TIMESTAMP",
    }
    types, back = read_back(snapshot("postgres", postgres_url, table, policy, tmp_path))
    assert types == policy
    assert back == [
        (1, "Huli", 30, 1234.5, datetime(2024, 5, 1, 0, 30)),
        (2, None, None, None, None),
    ]


@pytest.mark.postgres
def test_postgres_value_out_of_range_names_the_column_not_the_value(
    postgres_url: str, tmp_path: Path
) -> None:
    table = f"big_{uuid.uuid4().hex[:8]}"
    create_pg_table(postgres_url, table, {"person_id": "bigint"}, [(1,), (9_876_543_210,)])
    with pytest.raises(ConnectorError) as info:
        snapshot("postgres", postgres_url, table, {"person_id": "INTEGER"}, tmp_path)
    message = str(info.value)
    assert "column 'person_id' has values out of range for INTEGER; declare a wider type" in message
    assert "9876543210" not in message


@pytest.mark.postgres
def test_postgres_infinite_dates_are_refused_without_the_value(
    postgres_url: str, tmp_path: Path
) -> None:
    table = f"open_{uuid.uuid4().hex[:8]}"
    create_pg_table(
        postgres_url, table, {"person_id": "integer", "born": "date"}, [(1, "infinity")]
    )
    with pytest.raises(ConnectorError) as info:
        snapshot(
            "postgres", postgres_url, table, {"person_id": "INTEGER", "born": "DATE"}, tmp_path
        )
    message = str(info.value)
    assert "some values cannot be converted to the policy's types" in message
    assert message.endswith("point source.table at the view")
    assert "'infinity'" in message  # the example in the advice, not a quoted value:
    assert "too large" not in message  # the driver's own message is not passed on


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.postgres
@pytest.mark.parametrize("failure", ["no-server", "no-database"])
def test_postgres_connection_failure_hides_the_password(
    failure: str, postgres_url: str, tmp_path: Path
) -> None:
    port = _closed_port() if failure == "no-server" else conninfo_to_dict(postgres_url)["port"]
    location = f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/nowhere"
    with pytest.raises(ConnectorError) as info:
        snapshot("postgres", location, "people", PEOPLE, tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"cannot connect to PostgreSQL at postgres@127.0.0.1:{port}/nowhere ("
    )
    assert message.endswith("the database name, user and password in source.location")
    assert "s3cret-pw" not in message
    if failure == "no-database":
        assert 'database "nowhere" does not exist' in message


def test_postgres_location_that_is_not_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="source.location is not a PostgreSQL URL") as info:
        snapshot("postgres", "not a url s3cret", "people", PEOPLE, tmp_path)
    assert "s3cret" not in str(info.value)
