"""The output step (issue 17's overhead): sharing the parts of the output SQL that repeat, and
running it bound once, releases exactly what the SQL written out in place released.

For every accepted query of the compiler's fixtures, the noisy table a real release handed to the
output step is kept, and the output SQL runs on it twice: as compiled (shared parts computed once,
`generate._Released.share`; run by `noise.run_output_in_duckdb`) and written out in place (sharing turned
off, run through DuckDB's relation as before). The tables must be equal, schema and every value,
also on the same noisy table with its values moved to the edges (0, negative, huge, a suppressed
row), where the clipping cases of the intervals take over. (That the output step in Python
releases what DuckDB does: test_output_evaluator.py.)"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sandbox.compiler import compile_query, generate
from sandbox.compiler.cache import PLANS
from sandbox.engine import noise
from sandbox.engine.worker import post_connection
from tests.compiler.cases import load_cases
from tests.support.output import at_edges, noisy_table, same_table

ACCEPTED = load_cases("accepted.sql") + load_cases("joins_accepted.sql") + load_cases("typed_accepted.sql")


def _before(sql: str, released: pa.Table) -> pa.Table:
    """The output step as it ran before: DuckDB's relation over the registered noisy table."""
    post = post_connection()
    post.register("released", released)
    try:
        return post.sql(sql).to_arrow_table()
    finally:
        post.unregister("released")


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.title for c in ACCEPTED])
def test_shared_output_sql_releases_what_the_written_out_sql_did(case, demo_catalog, monkeypatch) -> None:
    plan = compile_query(case.sql, demo_catalog, epsilon=1.0)
    written_out = _written_out(case.sql, demo_catalog, monkeypatch)
    released = noisy_table(plan)
    post = post_connection()
    for table in (released, at_edges(released, [p.id for p in plan.primitives])):
        after = noise.run_output_in_duckdb(post, plan.output_sql, table)
        before = _before(written_out, table)
        assert same_table(after, before), (case.title, after.to_pylist(), before.to_pylist())
        assert pc.sum(pc.is_null(after.column("__suppressed"))).as_py() == 0


def _written_out(sql: str, catalog, monkeypatch) -> str:
    """The output SQL with every part written out where it is used (no sharing)."""
    with monkeypatch.context() as inline, PLANS.disabled():
        inline.setattr(generate._Released, "share", lambda self, part: part)
        return compile_query(sql, catalog, epsilon=1.0).output_sql


def test_sharing_shortens_the_output_sql(demo_catalog, monkeypatch) -> None:
    """The point of sharing: DuckDB parses and binds the output SQL anew for every release, at
    some 25 microseconds a node, and that was most of the engine's own time on small data."""
    sql = "SELECT district, COUNT(*), SUM(monthly_income), AVG(monthly_income) FROM residents GROUP BY district"
    shared = compile_query(sql, demo_catalog, epsilon=1.0).output_sql
    assert len(shared) < 0.7 * len(_written_out(sql, demo_catalog, monkeypatch))
