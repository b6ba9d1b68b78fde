"""WHERE and GROUP BY work on rows: no aggregates there (a filter on an exact aggregate would
leak it). Identifiers in WHERE are refused by no_identifiers."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.vocabulary import AGGREGATES

NAME = "where_is_row_level"


def check(query: exp.Select, ctx: Context) -> None:
    for clause in (query.args.get("where"), query.args.get("group")):
        if clause is None:
            continue
        for node in clause.find_all(*AGGREGATES):
            ctx.reject(
                node,
                f"The aggregate {node.sql('duckdb')[:40]} in {clause.key.upper()}",
                "WHERE and GROUP BY work on rows; a condition on an exact aggregate would leak it",
                "Put aggregates in SELECT; filter released values with HAVING.",
                NAME,
            )
