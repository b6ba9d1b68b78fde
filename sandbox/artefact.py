"""What registration produces, whichever engine runs it (DuckDB here, Spark through
engine/spark_registration.py): the layout of the portable engine artefact, and the verification
of the facts the manifest records, from counts however computed. Kept apart from the catalog so
that a registration on another engine depends on this, not on the catalog that calls it."""

from __future__ import annotations

import math
from typing import Any

from sandbox.errors import SchemaMismatch
from sandbox.policy import Policy

__all__ = [
    "ENGINE_ARTEFACT",
    "MAX_ROWS",
    "QUANTIZED_PREFIX",
    "RANK_COLUMN",
    "ROW_TEXT_ENCODING",
    "size_class",
    "verify_non_null",
    "verify_out_of_range",
    "verify_units",
]

RANK_COLUMN = "__rank"
QUANTIZED_PREFIX = "__q_"
ENGINE_ARTEFACT = "engine.parquet"
# How the text a row's keyed hash is taken of is built: DuckDB's CAST(row(...) AS VARCHAR) of the
# row as stored (`catalog._stored`: policy types, one NaN, dates outside 0001..9999 as NULL). A
# registration on another engine builds the same text (sandbox/engine/spark_registration.py);
# changing it changes every rank, so it is versioned in the manifest.
ROW_TEXT_ENCODING = "duckdb-row-text-of-stored-values-2"
MAX_ROWS = 2**40  # with at most 2**20 grid steps per value, any sum fits in 64 bits


def size_class(rows: int) -> int:
    """The public size bound registration publishes: the next power of two (at least 1024), so
    the compiler's worst-case estimates depend on a coarse class fixed at registration, never on
    the current count."""
    return max(1024, 2 ** math.ceil(math.log2(max(rows, 1))))


def verify_out_of_range(policy: Policy, counts: dict[str, int]) -> dict[str, int]:
    """Dates and timestamps outside 0001..9999 (counted however, DuckDB or Spark) are stored as
    NULL: refused in a column not declared nullable; the counts of the others are recorded."""
    for name, n in counts.items():
        if n and not policy.columns[name].nullable:
            raise SchemaMismatch(
                f"{policy.name}: column {name!r} has {n} value(s) outside 0001-01-01 .. 9999-12-31 (or infinity), "
                "which the sandbox stores as NULL, but it is not declared nullable; fix the source, or declare "
                "`nullable: true`",
                dataset=policy.name,
                column=name,
            )
    return {name: int(n) for name, n in counts.items() if n}


def verify_non_null(policy: Policy, nulls: dict[str, int]) -> list[str]:
    """Columns not declared nullable (with their NULL counts, however counted) must have none."""
    for name, n in nulls.items():
        if n:
            raise SchemaMismatch(
                f"{policy.name}: column {name!r} has {n} NULL value(s) but is not declared nullable; "
                f"add `nullable: true` to it in the policy, or fix the source",
                dataset=policy.name,
                column=name,
            )
    return list(nulls)


def verify_units(
    policy: Policy, *, max_rows: int | None, units: int | None, rows_total: int | None, constant: list[str]
) -> dict[str, Any]:
    """The unit facts the compiler relies on, from counts however computed (DuckDB or Spark):
    refuses a broken constant_per_unit declaration or too many rows."""
    declared = [n for n, c in policy.columns.items() if c.constant_per_unit]
    broken = [n for n in declared if n not in constant]
    if broken:
        raise SchemaMismatch(
            f"{policy.name}: column {broken[0]!r} is declared constant_per_unit, but some {policy.unit} has "
            "several values; remove the declaration or fix the source",
            dataset=policy.name,
            column=broken[0],
        )
    if (rows_total or 0) >= MAX_ROWS:
        raise SchemaMismatch(
            f"{policy.name}: {rows_total} rows exceed the supported {MAX_ROWS}; split it", dataset=policy.name
        )
    return {"units": units or 0, "max_rows_per_unit": max_rows or 0, "constant_dimensions": declared}
