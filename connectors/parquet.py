"""Parquet files used in place: the source already is the format the catalog reads, so a
snapshot is just the path plus the schema DuckDB sees in it (no copy, however large)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import duckdb

from connectors.base import Snapshot, check_schema, register
from sandbox.errors import ConnectorError

if TYPE_CHECKING:
    from sandbox.policy import Policy

__all__ = ["ParquetConnector", "parquet_glob"]


def parquet_glob(path: Path) -> str:
    """What DuckDB should read for `path`: the file itself, or every Parquet file below a
    directory (partitioned layouts nest them in sub-directories)."""
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


class ParquetConnector:
    kind: ClassVar[str] = "parquet"

    def snapshot(self, policy: Policy, location: str, workdir: Path) -> Snapshot:
        path = Path(location)
        if not path.exists():
            raise ConnectorError(
                f"{path}: no such Parquet file or directory; check source.location in policy "
                f"{policy.name!r}",
                dataset=policy.name,
            )
        if path.is_dir() and next(path.rglob("*.parquet"), None) is None:
            raise ConnectorError(
                f"{path}: the directory holds no *.parquet files; put the data files there or "
                f"point source.location at the right directory",
                dataset=policy.name,
            )
        try:
            with duckdb.connect() as con:
                rows = con.execute(
                    "DESCRIBE SELECT * FROM read_parquet($files)", {"files": parquet_glob(path)}
                ).fetchall()
        except duckdb.Error as exc:
            raise ConnectorError(
                f"{path}: cannot be read as Parquet ({_first_line(exc)}); check that "
                f"source.location names Parquet data and that source.kind is right",
                dataset=policy.name,
            ) from None
        schema = {name: type_ for name, type_, *_ in rows}
        check_schema(policy, schema, str(path))
        return Snapshot(parquet=path, schema=schema)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


register(ParquetConnector())
