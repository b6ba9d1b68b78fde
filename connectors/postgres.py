"""A PostgreSQL table or view, streamed into Parquet through one read-only transaction.

Rows come through a server-side cursor in fixed-size batches, so memory stays bounded however
large the table is, and the Parquet file gets the policy's column types (the policy, not the
database, is the contract the compiler relies on). Only the policy's columns are read.
Error messages name host, port, database and user, never the password.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from connectors.base import Snapshot, check_schema, register
from sandbox.errors import ConnectorError

if TYPE_CHECKING:
    from sandbox.policy import Policy

__all__ = ["BATCH_ROWS", "PostgresConnector"]

BATCH_ROWS = 50_000

# Policy type -> (PostgreSQL type every compatible source column widens to, Arrow type).
# Widening in SQL never fails; narrowing happens in Arrow, per column, where a value that does
# not fit can be blamed on its column.
_TYPES: dict[str, tuple[str, pa.DataType]] = {
    "BOOLEAN": ("boolean", pa.bool_()),
    "TINYINT": ("bigint", pa.int8()),
    "SMALLINT": ("bigint", pa.int16()),
    "INTEGER": ("bigint", pa.int32()),
    "BIGINT": ("bigint", pa.int64()),
    "FLOAT": ("double precision", pa.float32()),
    "DOUBLE": ("double precision", pa.float64()),
    "VARCHAR": ("text", pa.string()),
    "DATE": ("date", pa.date32()),
    "TIMESTAMP": ("timestamp", pa.timestamp("us")),
}

# information_schema data_type -> DuckDB type name, so check_schema can judge the source.
_DUCKDB_NAMES = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "numeric": "DECIMAL",
    "boolean": "BOOLEAN",
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "character": "VARCHAR",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
}

_COLUMNS = """
    SELECT column_name, data_type FROM information_schema.columns
    WHERE table_schema = %(schema)s AND table_name = %(table)s ORDER BY ordinal_position
"""
_TABLES = """
    SELECT table_schema || '.' || table_name FROM information_schema.tables
    WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 50
"""


class PostgresConnector:
    kind: ClassVar[str] = "postgres"

    def snapshot(self, policy: Policy, location: str, workdir: Path) -> Snapshot:
        if not policy.source.table:
            raise ConnectorError(
                f"policy {policy.name!r}: a postgres source needs source.table; add "
                f"`table: <table>` or `table: <schema>.<table>` under source",
                dataset=policy.name,
            )
        info = _parse(location, policy.name)
        target, password = _target(info), info.get("password")
        out = workdir / f"{policy.name}.parquet"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            with _connect(location, info, target, policy.name) as conn:
                conn.execute("SET TIME ZONE 'UTC'")  # timestamptz becomes UTC wall time
                schema_name, table = _resolve(conn, policy.source.table)
                origin = f"{target} table {schema_name}.{table}"
                columns = dict(conn.execute(_COLUMNS, {"schema": schema_name, "table": table}))
                if not columns:
                    existing = [row[0] for row in conn.execute(_TABLES)]
                    raise ConnectorError(
                        f"{target}: no table {schema_name}.{table} (or the user may not read "
                        f"it); the tables are: {', '.join(existing) or '(none)'}; set "
                        f"source.table in policy {policy.name!r} to one of them, or grant SELECT "
                        f"on it",
                        dataset=policy.name,
                        table=policy.source.table,
                    )
                check_schema(policy, {n: _duckdb_name(t) for n, t in columns.items()}, origin)
                _copy(conn, policy, schema_name, table, out, origin)
        except psycopg.Error as exc:
            raise ConnectorError(
                f"{target}: reading {policy.source.table} failed "
                f"({_redact(_first_line(exc), password)}); check the table and the user's "
                f"privileges on it",
                dataset=policy.name,
            ) from None
        return Snapshot(parquet=out, schema={n: c.type for n, c in policy.columns.items()})


def _parse(location: str, dataset: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(location)
    except psycopg.ProgrammingError:
        raise ConnectorError(
            f"policy {dataset!r}: source.location is not a PostgreSQL URL or conninfo string; "
            f"write postgresql://user@host:port/dbname (the password may come from $PGPASSWORD "
            f"or ~/.pgpass)",
            dataset=dataset,
        ) from None


def _target(info: dict[str, Any]) -> str:
    """`user@host:port/dbname`: enough to find the server in a message, never the password."""
    host = info.get("host") or info.get("hostaddr") or "localhost"
    where = f"{host}:{info.get('port') or 5432}/{info.get('dbname') or '(default database)'}"
    return f"{info['user']}@{where}" if info.get("user") else where


def _connect(location: str, info: dict[str, Any], target: str, dataset: str) -> psycopg.Connection:
    timeout = info.get("connect_timeout", 10)  # an unreachable host must not hang registration
    try:
        conn = psycopg.connect(
            location, connect_timeout=timeout, application_name="sandbox-snapshot"
        )
    except psycopg.OperationalError as exc:
        raise ConnectorError(
            f"cannot connect to PostgreSQL at {target} "
            f"({_redact(_first_line(exc), info.get('password'))}); "
            f"check that the server is running and reachable, and the database name, user and "
            f"password in source.location",
            dataset=dataset,
        ) from None
    conn.read_only = True
    return conn


def _resolve(conn: psycopg.Connection, name: str) -> tuple[str, str]:
    """`schema.table`, or `table` in the connection's current schema."""
    schema_name, _, table = name.rpartition(".")
    if not schema_name:
        row = conn.execute("SELECT current_schema()").fetchone()
        schema_name = row[0] if row and row[0] else "public"
    return schema_name, table


def _copy(
    conn: psycopg.Connection, policy: Policy, schema_name: str, table: str, out: Path, origin: str
) -> None:
    names = list(policy.columns)
    arrow = pa.schema([(n, _TYPES[policy.columns[n].type][1]) for n in names])
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Identifier(n), sql.SQL(_TYPES[policy.columns[n].type][0]))
            for n in names
        ),
        sql.Identifier(schema_name, table),
    )
    with conn.cursor(name="sandbox_snapshot") as cursor, pq.ParquetWriter(out, arrow) as writer:
        try:
            cursor.execute(query)
            for rows in _batches(cursor):
                writer.write_batch(_record_batch(rows, arrow, origin, policy))
        except psycopg.DataError:  # the driver's message quotes the value: drop it
            raise ConnectorError(
                f"{origin}: some values cannot be converted to the policy's types (for example "
                f"PostgreSQL's 'infinity' dates and timestamps); replace them in a view and point "
                f"source.table at the view",
                dataset=policy.name,
            ) from None


def _batches(cursor: psycopg.ServerCursor) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cursor.fetchmany(BATCH_ROWS):
        yield rows


def _record_batch(
    rows: Sequence[tuple[Any, ...]], arrow: pa.Schema, origin: str, policy: Policy
) -> pa.RecordBatch:
    arrays = []
    for field, values in zip(arrow, zip(*rows, strict=True), strict=True):
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, OverflowError):  # Arrow's message quotes the value: drop it
            declared = policy.columns[field.name].type
            raise ConnectorError(
                f"{origin}: column {field.name!r} has values out of range for {declared}; "
                f"declare a wider type for it in policy {policy.name!r}",
                dataset=policy.name,
                column=field.name,
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=arrow)


def _duckdb_name(pg_type: str) -> str:
    return _DUCKDB_NAMES.get(pg_type, pg_type.upper())


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _redact(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


register(PostgresConnector())
