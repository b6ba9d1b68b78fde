"""Which base columns a plan's generated SQL reads, found independently of our binder: sqlglot's
scope analysis of the generated text names, for every column reference, the relation it reads;
a reference resolves to a base table when it is qualified by that table's alias or stands in a
SELECT whose only source is that table."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from sandbox.catalog import QUANTIZED_PREFIX, RANK_COLUMN
from sandbox.compiler.plan import Plan

__all__ = ["references"]


def _statements(plan: Plan) -> list[exp.Expression]:
    """The statements the worker runs; for a plan with nothing noisy (keys of a public key set
    alone, read from the policy), the statement that would group by its keys, so that the columns
    the query names (the agreement's scope) are still checked against SQL."""
    aggregate = plan.aggregate_sql if plan.needs_aggregate or not plan.primitives else None
    texts = [s for s in (aggregate, *plan.histogram_sql.values()) if s]
    return [sqlglot.parse_one(text, read="duckdb") for text in texts]


def references(plan: Plan) -> tuple[set[tuple[str, str]], set[str]]:
    """(dataset, column) pairs the generated SQL reads (quantized copies mapped to the column
    they come from, ranks dropped), and every column name it mentions."""
    found: set[tuple[str, str]] = set()
    names: set[str] = set()
    for tree in _statements(plan):
        names |= {c.name.removeprefix(QUANTIZED_PREFIX) for c in tree.find_all(exp.Column)}
        for scope in traverse_scope(tree):
            tables = [s for s in scope.sources.values() if isinstance(s, exp.Table)]
            for column in scope.columns:
                source = scope.sources.get(column.table) if column.table else None
                if source is None and not column.table and len(scope.sources) == 1 and tables:
                    source = tables[0]
                if isinstance(source, exp.Table) and column.name != RANK_COLUMN:
                    found.add((source.catalog, column.name.removeprefix(QUANTIZED_PREFIX)))
    return found, names
