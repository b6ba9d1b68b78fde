"""The output step both ways, for tests: in Python (engine/output_evaluator.py) where it can be,
and in DuckDB, on the same noisy table; the two must release the same table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from sandbox.compiler.plan import Plan
from sandbox.engine import noise, output_evaluator
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import WorkerLimits, open_locked_connection
from sandbox.engine.worker import post_connection

EDGES = (0.0, -3.0, 1e12, 7.0, -1e9, 2.5)


def noisy_table(plan: Plan, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Run `plan` as the worker does (on `con`, or a fresh locked connection); the noisy table
    its output step was given."""
    seen: list[pa.Table] = []
    real = noise.run_output

    def keep(post: duckdb.DuckDBPyConnection, sql: str, released: pa.Table) -> pa.Table:
        seen.append(released)
        return real(post, sql, released)

    noise.run_output = keep
    locked = con or open_locked_connection(plan.attach, WorkerLimits())
    try:
        run_plan(locked, plan)
    finally:
        noise.run_output = real
        if con is None:
            locked.close()
    return seen[0]


def at_edges(released: pa.Table, primitives: Sequence[str], edges: Sequence[float] = EDGES) -> pa.Table:
    """The same groups with every noisy value moved to an edge case, the last group suppressed."""
    n = released.num_rows
    if n == 0:
        return released
    suppressed = [False] * (n - 1) + [True]
    for pid in primitives:
        column = released.column(pid)
        if pa.types.is_null(column.type):  # no value to move (every group's was NULL)
            continue
        values = [None if s else edges[(i + len(pid)) % len(edges)] for i, s in enumerate(suppressed)]
        released = released.set_column(
            released.schema.get_field_index(pid), pid, pa.array(values).cast(column.type, safe=False)
        )
    index = released.schema.get_field_index("__suppressed")
    return released.set_column(index, "__suppressed", pa.array(suppressed))


def same_table(a: pa.Table, b: pa.Table) -> bool:
    """Equal schema and values; NaN equals NaN, and -0.0 is not 0.0."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        for u, v in zip(x.to_pylist(), y.to_pylist(), strict=True):
            if isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v):
                continue
            if u != v or type(u) is not type(v):
                return False
            if isinstance(u, float) and math.copysign(1, u) != math.copysign(1, v):
                return False
    return True


def both_ways(sql: str, released: pa.Table) -> tuple[pa.Table | None, pa.Table]:
    """(Python's table or None where the step is DuckDB's, DuckDB's table)."""
    program = output_evaluator.program(sql, released.schema)
    in_python = None
    if program is not None and released.num_rows:
        try:
            in_python = program(released)
        except output_evaluator.Fallback:  # overflow, equal sort keys: DuckDB's, as in noise.run_output
            pass
    return in_python, noise.run_output_in_duckdb(post_connection(), sql, released)


def check_both_ways(sql: str, released: pa.Table) -> bool:
    """Assert the two ways agree; True where Python evaluated the step."""
    in_python, in_duckdb = both_ways(sql, released)
    if in_python is None:
        return False
    assert same_table(in_python, in_duckdb), (
        f"the output step differs in Python and in DuckDB\nSQL: {sql}\ninput: {released.to_pylist()}\n"
        f"Python: {in_python.schema} {in_python.to_pylist()}\nDuckDB: {in_duckdb.schema} {in_duckdb.to_pylist()}"
    )
    return True
