"""The DuckDB backend: the plan's generated SQL on the engine files, attached read-only to a
locked connection that the worker keeps warm across jobs (worker.py).

Why a warm connection is safe: only compiler-generated SQL ever runs on it, and that SQL is a
single SELECT built from an allowlist of pure functions (compiler/render.py): it cannot create,
set, attach, prepare or seed anything, and the configuration is locked besides. A job therefore
cannot leave state behind for the next one. `exact` checks that each statement is exactly one
SELECT before running any (belt and braces; tests/engine/test_warm.py shows two consecutive jobs
see identical connection state).
"""

from __future__ import annotations

import duckdb

from sandbox.compiler.plan import Plan
from sandbox.engine.backend import Exact
from sandbox.engine.statements import select_statement
from sandbox.errors import QueryFailed

__all__ = ["DuckDBBackend", "check_statements"]


class DuckDBBackend:
    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def exact(self, plan: Plan) -> Exact:
        check_statements(self.con, plan)
        aggregate = None
        if plan.needs_aggregate:
            cursor = self.con.execute(select_statement(self.con, plan.aggregate_sql))
            aggregate = ([d[0] for d in cursor.description], cursor.fetchall())
        histograms = {
            pid: self.con.execute(select_statement(self.con, sql)).fetchall() for pid, sql in plan.histogram_sql.items()
        }
        return Exact.from_rows(plan, aggregate, histograms)


def check_statements(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """Parse every statement before running any, and make sure each is one SELECT.

    A parser error (DuckDB's limit of 1000 nested expressions, for one) depends on the query's
    text alone, so the job fails before data is read and costs nothing. Past this point every
    failure keeps the charge, because whether it happens may depend on the data."""
    try:
        for sql in (plan.aggregate_sql, *plan.histogram_sql.values(), plan.output_sql):
            select_statement(con, sql)  # parsed once per process (statements.py), and kept for the run
    except duckdb.ParserException:
        raise QueryFailed(
            "The compiled query is too deeply nested for the engine (DuckDB parses at most 1000 "
            "nested expressions). Nothing was read and nothing is charged. Simplify the expression, "
            "e.g. IN (...) instead of a long chain of OR.",
            data_touched=False,
        ) from None
