"""A query's worst-case memory, bounded from public facts before any data is read.

Why: the worker's DuckDB has a memory limit and never spills to disk, so a query that needs more
fails, and whether it needs more depends on the data (how many rows pass a filter, how many
distinct keys they have). A failure is a noiseless bit. So the compiler estimates what the query
could need *at worst* (every row passing, every private key distinct) from facts that are public:
each dataset's size class (its engine file's row count rounded up to a power of two at
registration, shown in the catalog), the policies' caps, public key sets and public tables, and
refuses a query whose worst case does not fit. Below that, running out of memory is not a
function of the data. The figures per row are deliberately generous: on worst-case data
(every key distinct) DuckDB needed 2 to 6 times less than estimated (tests/compiler/test_work.py
runs such queries with the memory limit set to the estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.compiler.scope import Scope

__all__ = ["DEFAULT_MEMORY_MB", "Work", "estimate"]

DEFAULT_MEMORY_MB = 1024  # the worker's default DuckDB memory_limit (engine.worker.Limits)
VALUE_BYTES = 16  # one value in a row that is materialised (a sort, a window, a hash table)
TEXT_BYTES = 48  # a text value: 16 for DuckDB's string header, room for the string itself
ROW_OVERHEAD = 48  # per materialised row: hash, pointers, selection vectors
SHARE = 1.0  # the worst case may use this share of the memory limit (the figures above are 2-6x DuckDB's peak)


@dataclass(frozen=True)
class Work:
    """Worst-case sizes of one query."""

    joined_rows: int  # rows the FROM clause can produce, before WHERE
    groups: int  # groups the aggregation can hold
    materialised_bytes: int  # rows held at once by joins and windows
    aggregate_bytes: int  # the aggregation's hash tables

    @property
    def bytes(self) -> int:
        return self.materialised_bytes + self.aggregate_bytes


def _row_bytes(columns: int, text_columns: int) -> int:
    return ROW_OVERHEAD + VALUE_BYTES * columns + TEXT_BYTES * text_columns


def estimate(
    scope: Scope,
    *,
    keys: int,
    text_keys: int,
    public_groups: int | None,
    primitives: int,
    histograms: int,
    projected: int,
    windows: bool,
    fan_out: list[int],
) -> Work:
    """Worst case of a plan: `projected` columns carried per joined row, `windows` if a window
    pass (the per-unit cap of a join, or the max_groups pass) materialises every row; `fan_out`
    says, per join, how many rows one row can meet (a private relation: its max_rows; a
    pre-aggregation: one; a public table: the most rows sharing the joined value)."""
    rows = scope.base.dataset.size_bound
    materialised = 0
    for join, fan in zip(scope.joins, fan_out, strict=True):
        side = join.relation.dataset.size_bound
        materialised += side * _row_bytes(len(join.relation.outputs), 0)  # the hash join's build side
        rows *= fan
    if windows:
        materialised += rows * _row_bytes(projected + len(scope.relations) + 2, text_keys)
    groups = public_groups if public_groups is not None else (rows if keys else 1)
    groups = min(groups, rows) if keys else 1
    per_group = _row_bytes(keys + primitives, text_keys)
    aggregate = groups * per_group + groups * histograms * _row_bytes(keys + 2, text_keys) * 4
    return Work(rows, groups, materialised, aggregate)


def limit_bytes(memory_mb: int) -> int:
    return int(memory_mb * 1024 * 1024 * SHARE)


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)
