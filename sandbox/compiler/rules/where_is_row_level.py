"""WHERE, ON and GROUP BY work on rows: no aggregates there (a filter on an exact aggregate would
leak it). Identifiers there are refused by no_identifiers."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context
from sandbox.compiler.vocabulary import AGGREGATES

NAME = "where_is_row_level"


def check(query: exp.Select, ctx: Context) -> None:
    joins = [j.args.get("on") for j in query.args.get("joins") or []]
    for clause in (query.args.get("where"), query.args.get("group"), *joins):
        if clause is None:
            continue
        for node in clause.find_all(*AGGREGATES):
            if node.find_ancestor(exp.Subquery):
                continue  # a pre-aggregation's own aggregates
            where = "ON" if any(clause is j for j in joins) else clause.key.upper()
            ctx.reject(
                node,
                f"The aggregate {node.sql('duckdb')[:40]} in {where}",
                "WHERE and GROUP BY work on rows; a condition on an exact aggregate would leak it",
                "Put aggregates in SELECT; filter released values with HAVING.",
                NAME,
            )
