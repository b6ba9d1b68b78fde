"""The output step (issue 17's overhead): sharing the parts of the output SQL that repeat, and
running it bound once, releases exactly what the SQL written out in place released.

For every accepted query of the compiler's fixtures, the noisy table a real release handed to the
output step is kept, and the output SQL runs on it twice: as compiled (shared parts computed once,
`generate._Released.share`; run by `noise.run_output`) and written out in place (sharing turned
off, run through DuckDB's relation as before). The tables must be equal, schema and every value,
also on the same noisy table with its values moved to the edges (0, negative, huge, a suppressed
row), where the clipping cases of the intervals take over."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sandbox.compiler import compile_query, generate
from sandbox.engine import noise
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import WorkerLimits, open_locked_connection
from sandbox.engine.worker import post_connection
from tests.compiler.cases import load_cases

ACCEPTED = load_cases("accepted.sql") + load_cases("joins_accepted.sql") + load_cases("typed_accepted.sql")
EDGES = (0.0, -3.0, 1e12, 7.0, -1e9, 2.5)


def _released(plan, monkeypatch) -> pa.Table:
    """The noisy table one real release of `plan` handed to its output step."""
    seen: list[pa.Table] = []
    real = noise.run_output

    def keep(post, sql, released):
        seen.append(released)
        return real(post, sql, released)

    monkeypatch.setattr(noise, "run_output", keep)
    con = open_locked_connection(plan.attach, WorkerLimits())
    try:
        run_plan(con, plan)
    finally:
        con.close()
        monkeypatch.setattr(noise, "run_output", real)
    return seen[0]


def _at_edges(released: pa.Table, primitives: list[str]) -> pa.Table:
    """The same groups with every noisy value moved to an edge case, the last group suppressed."""
    n = released.num_rows
    if n == 0:
        return released
    suppressed = [False] * (n - 1) + [True]
    for pid in primitives:
        column = released.column(pid)
        values = [None if s else EDGES[(i + len(pid)) % len(EDGES)] for i, s in enumerate(suppressed)]
        released = released.set_column(
            released.schema.get_field_index(pid), pid, pa.array(values).cast(column.type, safe=False)
        )
    index = released.schema.get_field_index("__suppressed")
    return released.set_column(index, "__suppressed", pa.array(suppressed))


def _before(sql: str, released: pa.Table) -> pa.Table:
    """The output step as it ran before: DuckDB's relation over the registered noisy table."""
    post = post_connection()
    post.register("released", released)
    try:
        return post.sql(sql).to_arrow_table()
    finally:
        post.unregister("released")


def _same(a: pa.Table, b: pa.Table) -> bool:
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        for u, v in zip(x.to_pylist(), y.to_pylist(), strict=True):
            if isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v):
                continue
            if u != v or type(u) is not type(v):
                return False
            if isinstance(u, float) and math.copysign(1, u) != math.copysign(1, v):  # -0.0 is not 0.0 here
                return False
    return True


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.title for c in ACCEPTED])
def test_shared_output_sql_releases_what_the_written_out_sql_did(case, demo_catalog, monkeypatch) -> None:
    plan = compile_query(case.sql, demo_catalog, epsilon=1.0)
    written_out = _written_out(case.sql, demo_catalog, monkeypatch)
    released = _released(plan, monkeypatch)
    post = post_connection()
    for table in (released, _at_edges(released, [p.id for p in plan.primitives])):
        after = noise.run_output(post, plan.output_sql, table)
        before = _before(written_out, table)
        assert _same(after, before), (case.title, after.to_pylist(), before.to_pylist())
        assert pc.sum(pc.is_null(after.column("__suppressed"))).as_py() == 0


def _written_out(sql: str, catalog, monkeypatch) -> str:
    """The output SQL with every part written out where it is used (no sharing)."""
    with monkeypatch.context() as inline:
        inline.setattr(generate._Released, "share", lambda self, part: part)
        return compile_query(sql, catalog, epsilon=1.0).output_sql


def test_sharing_shortens_the_output_sql(demo_catalog, monkeypatch) -> None:
    """The point of sharing: DuckDB parses and binds the output SQL anew for every release, at
    some 25 microseconds a node, and that was most of the engine's own time on small data."""
    sql = "SELECT district, COUNT(*), SUM(monthly_income), AVG(monthly_income) FROM residents GROUP BY district"
    shared = compile_query(sql, demo_catalog, epsilon=1.0).output_sql
    assert len(shared) < 0.7 * len(_written_out(sql, demo_catalog, monkeypatch))
