"""Shared by every backend, inside the worker: exact aggregates in, the noisy release out.

This is where exact aggregates end: what `noisy_release` returns is built from noisy values
(OpenDP), public key sets and public scales only. Disclosure control and the plan's output SQL
(over the noisy table: in Python, output_evaluator.py, or in a DuckDB connection that holds no
data) are post-processing.
"""

from __future__ import annotations

import warnings
from typing import Any

import duckdb
import pyarrow as pa

from sandbox import privacy
from sandbox.compiler.plan import Plan, Primitive
from sandbox.engine import output_evaluator
from sandbox.engine.backend import Exact
from sandbox.engine.statements import select_statement
from sandbox.notes import Note, note

__all__ = ["noisy_release", "run_output", "run_output_in_duckdb", "warm_up"]


def noisy_release(plan: Plan, exact: Exact, post: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Noise every primitive, apply disclosure control, run the output SQL on `post`; the
    release's table (values, interval ends `__lo_i`/`__hi_i`, `__suppressed`) and its notes."""
    nkeys = len(plan.key_names)
    aggregates, histograms = exact.aggregates, exact.histograms
    noisy: dict[str, list[float | None]] = {}
    notes: list[Note] = []
    if nkeys == 0:
        groups: list[tuple] = [()]
    elif plan.public_keys is not None:
        groups = [tuple(k) for k in plan.public_keys]
    else:
        sel = plan.selection
        counts = {key: int(values[sel.primitive]) for key, values in aggregates.items()}
        result = privacy.threshold_counts(
            counts, l0=sel.l0, l1=sel.l1, linf=sel.linf, epsilon=sel.epsilon, delta=sel.delta
        )
        groups = sorted(result.released, key=_sort_key)
        noisy[sel.primitive] = [float(result.released[g]) for g in groups]
        if not groups:
            # said as the plan said it before spending: "about N rows" or "about N <unit> values"
            said = next((n for n in plan.notes if n.key.startswith("private_keys")), None)
            counted = said.key.rpartition(".")[2] if said else ("units" if sel.linf == 1 else "rows")
            unit = said.values.get("unit", "unit") if said else "unit"
            notes.append(note(f"no_groups.{counted}", threshold=sel.threshold, unit=unit))

    for p in plan.primitives:
        if p.id in noisy:
            continue
        if p.kind == "quantile":
            noisy[p.id] = [_quantile(p, histograms[p.id].get(g, {})) for g in groups]
        else:
            if p.from_histogram is not None:  # the count of values the histogram already holds
                values = [sum(histograms[p.from_histogram].get(g, {}).values()) for g in groups]
            else:
                values = [int(aggregates.get(g, {}).get(p.id) or 0) for g in groups]
            released, _ = privacy.discrete_laplace(values, sensitivity=p.sensitivity, epsilon=p.epsilon)
            noisy[p.id] = [v * p.step for v in released]
    del aggregates, histograms, exact  # nothing exact past this line

    suppressed = _disclosure_control(plan, noisy, len(groups))
    columns: dict[str, list[Any]] = {name: [g[i] for g in groups] for i, name in enumerate(plan.key_names)}
    for p in plan.primitives:
        columns[p.id] = [None if s else v for v, s in zip(noisy[p.id], suppressed, strict=True)]
    columns["__suppressed"] = suppressed
    table = run_output(post, plan.output_sql, pa.table(columns) if groups else _empty(plan))
    notes.extend(_unbounded_notes(plan, table))
    return {"table": table, "notes": notes}


def run_output(post: duckdb.DuckDBPyConnection, sql: str, released: pa.Table) -> pa.Table:
    """The plan's output SQL over the noisy table: in Python when it is released again and
    output_evaluator knows every construct in it (a tenth of DuckDB's fixed cost for one small
    statement), else in DuckDB."""
    program = None
    if released.num_rows and output_evaluator.repeated(sql):
        program = output_evaluator.program(sql, released.schema)
    if program is not None:
        try:
            return program(released)
        except (output_evaluator.Fallback, RecursionError):  # overflow, equal sort keys, deep nesting
            pass
    return run_output_in_duckdb(post, sql, released)


def run_output_in_duckdb(post: duckdb.DuckDBPyConnection, sql: str, released: pa.Table) -> pa.Table:
    """The plan's output SQL over the noisy table in DuckDB, bound and run once.

    Not `post.sql(sql).to_arrow_table()`: DuckDB's relation binds the statement to learn its
    columns and then again to run it, and binding (not running: the table has a row per group)
    is nearly all of this step's cost. The warning DuckDB gives for Arrow from an executed
    statement is about copying the rows, of which there are a handful."""
    post.register("released", released)
    try:
        post.execute(select_statement(post, sql))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
            return post.to_arrow_table()
    finally:
        post.unregister("released")


def _unbounded_notes(plan: Plan, table: pa.Table) -> list[Note]:
    """Say which released cells have an interval with an open end (a ratio whose denominator's
    interval reaches 0): a NULL end is not a missing interval, and the reader must be told."""
    notes = []
    suppressed = table.column("__suppressed").to_pylist()
    for i, column in enumerate(plan.outputs):
        if column.kind == "key" or f"__lo_{i}" not in table.column_names:
            continue
        values = table.column(i).to_pylist()
        ends = zip(table.column(f"__lo_{i}").to_pylist(), table.column(f"__hi_{i}").to_pylist(), strict=True)
        open_ends = sum(
            1
            for v, hidden, (lo, hi) in zip(values, suppressed, ends, strict=True)
            if v is not None and not hidden and None in (lo, hi)
        )
        if open_ends:
            notes.append(note("open_ends", n=open_ends, column=column.name))
    return notes


def warm_up() -> None:
    """Load OpenDP's library and build one measurement, so a worker's first real job (and its
    measured address-space baseline) does not pay for it."""
    privacy.discrete_laplace([0], sensitivity=1, epsilon=1.0)
    privacy.noisy_quantile_index([1, 0], 0.5, d_in=1, epsilon=1.0)
    con = duckdb.connect()
    for _ in range(2):  # the second time in Python
        run_output(con, "SELECT x + 1 AS y FROM released", pa.table({"x": [1.0]}))
    con.close()


def _quantile(p: Primitive, hist: dict[int, int]) -> float:
    counts = [0] * p.candidates
    for index, n in hist.items():
        counts[min(max(index, 0), p.candidates - 1)] += n
    index, _ = privacy.noisy_quantile_index(counts, p.alpha, d_in=p.sensitivity, epsilon=p.epsilon)
    return p.lo + index * p.step


def _disclosure_control(plan: Plan, noisy: dict[str, list], n: int) -> list[bool]:
    """Statistical-office rules on top of DP (post-processing, free): round released counts,
    suppress groups whose noisy count is below the minimum."""
    if plan.round_to > 1:
        for p in plan.primitives:
            if p.kind in ("count", "units", "distinct"):
                noisy[p.id] = [round(v / plan.round_to) * plan.round_to for v in noisy[p.id]]
    if plan.suppress_by is None:
        return [False] * n
    return [v < plan.min_count for v in noisy[plan.suppress_by]]


def _empty(plan: Plan) -> pa.Table:
    fields = [pa.field(name, pa.null()) for name in plan.key_names]
    fields += [pa.field(p.id, pa.float64()) for p in plan.primitives]
    fields.append(pa.field("__suppressed", pa.bool_()))
    return pa.schema(fields).empty_table()


def _sort_key(key: tuple) -> tuple:
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in key)
