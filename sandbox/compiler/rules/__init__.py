"""Validation rules, run in order. Each is a module with one `check(query, ctx)` that raises
SQLRejected; adding a check means adding a module and a line here."""

from __future__ import annotations

from sandbox.compiler.rules import (
    aggregates,
    allowed_nodes,
    from_clause,
    group_by_dimensions,
    having_on_released,
    known_columns,
    no_identifiers,
    no_row_level_output,
    no_subqueries,
    order_and_limit,
    single_select,
    where_is_row_level,
)

RULES = (
    single_select,
    no_subqueries,
    from_clause,
    allowed_nodes,
    known_columns,
    no_identifiers,
    where_is_row_level,
    aggregates,
    group_by_dimensions,
    no_row_level_output,
    having_on_released,
    order_and_limit,
)

__all__ = ["RULES"]
