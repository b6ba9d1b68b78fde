"""Parse the user's text exactly once, with sqlglot's DuckDB dialect."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError
from sqlglot.helper import seq_get
from sqlglot.tokens import TokenType

from sandbox.errors import SQLRejected

__all__ = ["parse"]

MAX_SQL_CHARS = 20_000
_STRFTIME = DuckDB.Parser.FUNCTIONS["STRFTIME"]  # sqlglot's own builder, for every other format


def _strftime(args: list, dialect: sqlglot.Dialect) -> exp.TimeToStr:
    """sqlglot reads strftime(d, '') as strftime(d, 'None') and drops a third argument; the empty
    format stays empty and the third argument stays, for the type checker to refuse both as
    DuckDB would."""
    fmt = seq_get(args, 1)
    if isinstance(fmt, exp.Literal) and fmt.is_string and fmt.this == "":
        node = exp.TimeToStr(this=seq_get(args, 0), format=fmt)
    else:
        node = _STRFTIME(args, dialect)
    if len(args) > 2:
        node.set("zone", args[2])  # refused: "this form of strftime is not supported"
    return node


class _UsersDuckDB(DuckDB):
    """DuckDB's dialect as sqlglot reads it, with the user's strftime format kept as written."""

    class Parser(DuckDB.Parser):
        FUNCTIONS = {**DuckDB.Parser.FUNCTIONS, "STRFTIME": _strftime}


def _top(sql: str) -> tuple[str, int | None]:
    """`SELECT [DISTINCT] TOP n` (SQL Server's LIMIT): the text with `TOP n` blanked out (so
    positions stay the user's) and n, or the text unchanged and None."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql) if "top" in sql.lower() else []
    except TokenError:
        return sql, None
    if len(tokens) < 3 or tokens[0].token_type != TokenType.SELECT:
        return sql, None
    i = 2 if tokens[1].token_type == TokenType.DISTINCT else 1
    texts = [t.text.upper() for t in tokens[i : i + 5]]
    if texts[:1] != ["TOP"] or len(texts) < 3:
        return sql, None
    n, last = (2, 3) if texts[1] == "(" and texts[3:4] == [")"] else (1, 1)  # TOP n or TOP (n)
    if not tokens[i + n].text.isdigit() or i + last + 1 >= len(tokens):
        return sql, None
    if tokens[i + last + 1].text.upper() in ("PERCENT", "WITH"):
        return sql, None  # TOP n PERCENT / WITH TIES: not a LIMIT, left to the parser to refuse
    start, end = tokens[i].start, tokens[i + last].end + 1
    return sql[:start] + " " * (end - start) + sql[end:], int(tokens[i + n].text)


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
    text, top = _top(sql)
    try:
        statements = [
            s for s in sqlglot.parse(text, read=_UsersDuckDB) if s is not None and not isinstance(s, exp.Semicolon)
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
    statement = statements[0]
    if top is not None and isinstance(statement, exp.Select):
        if statement.args.get("limit") is not None:
            raise SQLRejected(
                "TOP together with LIMIT",
                "they say the same thing twice",
                "Keep one of them: SELECT TOP n ... or ... LIMIT n.",
                rule="parse",
            )
        statement.set("limit", exp.Limit(expression=exp.Literal.number(top)))
    return statement
