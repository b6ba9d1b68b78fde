"""A table in a DuckDB database file, copied to Parquet.

The file is attached read-only, so registering a dataset can never modify its source, and only
the policy's columns are copied: data the policy does not describe never enters the sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import duckdb
from sqlglot import exp

from connectors.base import Snapshot, check_schema, register
from sandbox.errors import ConnectorError

if TYPE_CHECKING:
    from sandbox.policy import Policy

__all__ = ["DuckDBTableConnector"]

_ALIAS = "source_db"
_COLUMNS = """
    SELECT column_name, data_type FROM information_schema.columns
    WHERE table_catalog = $db AND table_schema = $schema AND table_name = $table
    ORDER BY ordinal_position
"""
_TABLES = """
    SELECT table_schema || '.' || table_name FROM information_schema.tables
    WHERE table_catalog = $db ORDER BY 1
"""


class DuckDBTableConnector:
    kind: ClassVar[str] = "duckdb"

    def snapshot(self, policy: Policy, location: str, workdir: Path) -> Snapshot:
        path = Path(location)
        if not path.is_file():
            raise ConnectorError(
                f"{path}: no such DuckDB database file; check source.location in policy "
                f"{policy.name!r}",
                dataset=policy.name,
            )
        if not policy.source.table:
            raise ConnectorError(
                f"policy {policy.name!r}: a duckdb source needs source.table; add "
                f"`table: <table>` or `table: <schema>.<table>` under source",
                dataset=policy.name,
            )
        schema_name, _, table = policy.source.table.rpartition(".")
        schema_name = schema_name or "main"
        origin = f"{path} table {schema_name}.{table}"
        out = workdir / f"{policy.name}.parquet"
        workdir.mkdir(parents=True, exist_ok=True)
        with duckdb.connect() as con:
            try:
                con.execute(f"ATTACH $path AS {_ALIAS} (READ_ONLY)", {"path": str(path)})
            except duckdb.Error as exc:
                raise ConnectorError(
                    f"{path}: cannot be opened as a DuckDB database "
                    f"({str(exc).strip().splitlines()[0]}); check that it is a DuckDB file and "
                    f"that no other process holds it open for writing",
                    dataset=policy.name,
                ) from None
            names = {"db": _ALIAS, "schema": schema_name, "table": table}
            schema = dict(con.execute(_COLUMNS, names).fetchall())
            if not schema:
                existing = [row[0] for row in con.execute(_TABLES, {"db": _ALIAS}).fetchall()]
                raise ConnectorError(
                    f"{path}: no table {schema_name}.{table}; the tables are: "
                    f"{', '.join(existing) or '(none)'}; set source.table in policy "
                    f"{policy.name!r} to one of them",
                    dataset=policy.name,
                    table=policy.source.table,
                )
            check_schema(policy, schema, origin)
            query = exp.select(*(exp.column(name, quoted=True) for name in policy.columns)).from_(
                exp.table_(table, db=schema_name, catalog=_ALIAS, quoted=True)
            )
            con.sql(query.sql("duckdb")).write_parquet(str(out))
        return Snapshot(parquet=out, schema={name: schema[name] for name in policy.columns})


register(DuckDBTableConnector())
