"""Compiler-generated statements, parsed once per worker process and kept.

The same plans come back (a dashboard, a notebook re-run, the output SQL of every query of one
shape), and DuckDB's parser costs about half a microsecond a character: some 1 ms for a release's
output SQL, a third of what running it costs on a handful of noisy rows. A parsed statement
holds no data and no connection state, so one parse serves every later run, on any connection.
"""

from __future__ import annotations

import duckdb

from sandbox.errors import QueryFailed

__all__ = ["select_statement"]

_KEPT = 128  # statements per process (some 60 KB each); a full cache starts again: plans repeat in bursts
_PARSED: dict[str, duckdb.Statement] = {}


def select_statement(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement:
    """`sql` parsed, checked to be exactly one SELECT (or QueryFailed, nothing read), kept.

    Raises duckdb.ParserException for text DuckDB cannot parse (duckdb_backend.check_statements
    says what that means to the analyst)."""
    statement = _PARSED.get(sql)
    if statement is not None:
        return statement
    statements = con.extract_statements(sql)
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise QueryFailed(
            "The compiled plan holds something other than one SELECT per statement, which the engine "
            "never runs. Nothing was read and nothing is charged. Report this to the operators.",
            data_touched=False,
        )
    if len(_PARSED) >= _KEPT:
        _PARSED.clear()
    _PARSED[sql] = statements[0]
    return statements[0]
