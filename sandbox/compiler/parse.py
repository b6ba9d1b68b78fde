"""Parse the user's text exactly once, with sqlglot's DuckDB dialect."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from sandbox.errors import SQLRejected

__all__ = ["parse"]

MAX_SQL_CHARS = 20_000


def parse(sql: str) -> exp.Expression:
    if not isinstance(sql, str) or not sql.strip():
        raise SQLRejected("An empty query", "there is nothing to run", "Write one SELECT statement.", rule="parse")
    if len(sql) > MAX_SQL_CHARS:
        raise SQLRejected(
            f"A query of {len(sql):,} characters",
            f"queries are limited to {MAX_SQL_CHARS:,} characters",
            "Aggregate with GROUP BY instead of listing values in the SQL.",
            rule="parse",
        )
    if "\x00" in sql:
        raise SQLRejected("A NUL character", "SQL text must not contain NUL bytes", "Remove it.", rule="parse")
    try:
        statements = [
            s for s in sqlglot.parse(sql, read="duckdb") if s is not None and not isinstance(s, exp.Semicolon)
        ]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        raise SQLRejected(
            "This SQL",
            f"it could not be parsed ({first.get('description', 'syntax error')})",
            "Check the syntax near the marked position; the sandbox speaks DuckDB's SQL dialect.",
            rule="parse",
            line=first.get("line"),
            column=first.get("col"),
            sql=sql,
        ) from None
    except (TokenError, RecursionError) as err:
        raise SQLRejected(
            "This SQL",
            f"it could not be tokenized ({type(err).__name__})",
            "Check quotes and nesting.",
            rule="parse",
        ) from None
    if not statements:
        raise SQLRejected("An empty query", "there is nothing to run", "Write one SELECT statement.", rule="parse")
    if len(statements) != 1:
        raise SQLRejected(
            f"{len(statements)} statements",
            "a job runs exactly one statement",
            "Submit each SELECT as its own query.",
            rule="parse",
        )
    return statements[0]
