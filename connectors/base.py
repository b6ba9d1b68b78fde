"""The one small interface every data source implements, and the registry that finds them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from sandbox.errors import ConnectorError, SchemaMismatch

if TYPE_CHECKING:
    from sandbox.policy import Policy

__all__ = ["REGISTRY", "Connector", "Snapshot", "check_schema", "get_connector", "register"]


@dataclass(frozen=True)
class Snapshot:
    """What a connector hands to the catalog: Parquet (a file or a directory of files) that
    the catalog may read but must not modify, and its schema as DuckDB type names."""

    parquet: Path
    schema: dict[str, str]


class Connector(Protocol):
    kind: ClassVar[str]

    def snapshot(self, policy: Policy, location: str, workdir: Path) -> Snapshot:
        """Expose the source as Parquet. `location` is already resolved (absolute path or URL);
        `workdir` is a scratch directory the connector may write into (it is removed later)."""
        ...


REGISTRY: dict[str, Connector] = {}
_BUILTIN = {
    "parquet": "connectors.parquet",
    "csv": "connectors.csv",
    "duckdb": "connectors.duckdb_table",
    "postgres": "connectors.postgres",
}


def register(connector: Connector) -> Connector:
    """Add a connector kind (built-ins register themselves exactly like third-party ones)."""
    REGISTRY[connector.kind] = connector
    return connector


def get_connector(kind: str) -> Connector:
    if kind not in REGISTRY and kind in _BUILTIN:
        importlib.import_module(_BUILTIN[kind])
    try:
        return REGISTRY[kind]
    except KeyError:
        known = sorted(set(REGISTRY) | set(_BUILTIN))
        raise ConnectorError(
            f"unknown source kind {kind!r}; use one of {', '.join(known)}", kind=kind
        ) from None


# Types that may stand in for one another when the data's physical type differs from the
# policy's logical type (e.g. CSV inference picks BIGINT for an INTEGER column).
_COMPATIBLE = {
    "TINYINT": {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"},
    "DOUBLE": {"DOUBLE", "FLOAT", "DECIMAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"},
    "VARCHAR": {"VARCHAR"},
    "BOOLEAN": {"BOOLEAN"},
    "DATE": {"DATE"},
    "TIMESTAMP": {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE"},
}
_COMPATIBLE["SMALLINT"] = _COMPATIBLE["INTEGER"] = _COMPATIBLE["BIGINT"] = _COMPATIBLE["TINYINT"] | {"UBIGINT"}
_COMPATIBLE["FLOAT"] = _COMPATIBLE["DOUBLE"]


def _base_type(duckdb_type: str) -> str:
    return duckdb_type.split("(")[0].strip().upper()


def check_schema(policy: Policy, schema: dict[str, str], origin: str) -> None:
    """Fail early and clearly when the data does not have the columns and types the policy
    declares, instead of crashing later inside a query."""
    for name, column in policy.columns.items():
        if name not in schema:
            raise SchemaMismatch(
                f"{origin}: column {name!r} declared in policy {policy.name!r} is missing from the "
                f"data (it has: {', '.join(schema)}); fix the policy or the source",
                dataset=policy.name,
                column=name,
            )
        actual = _base_type(schema[name])
        if actual not in _COMPATIBLE[column.type]:
            raise SchemaMismatch(
                f"{origin}: column {name!r} is {actual} in the data but {column.type} in policy "
                f"{policy.name!r}; change the policy's type or convert the source column",
                dataset=policy.name,
                column=name,
                expected=column.type,
                actual=actual,
            )
