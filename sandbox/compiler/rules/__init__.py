"""Validation rules, run in order. Each is a module with one `check(query, ctx)` that raises
SQLRejected; adding a check means adding a module and a line here.

SYNTAX rules look at the parsed text alone and run before binding (bind.py); RULES run on the
bound query, where every column reference already names its base columns and every expression
has a type."""

from __future__ import annotations

from sandbox.compiler.rules import (
    aggregates,
    allowed_nodes,
    bounded_depth,
    from_clause,
    group_by_dimensions,
    having_on_released,
    no_identifiers,
    no_row_level_output,
    no_subqueries,
    order_and_limit,
    single_select,
    where_is_row_level,
)

SYNTAX = (
    bounded_depth,
    single_select,
    no_subqueries,
    allowed_nodes,
)

RULES = (
    from_clause,
    no_identifiers,
    where_is_row_level,
    aggregates,
    group_by_dimensions,
    no_row_level_output,
    having_on_released,
    order_and_limit,
)

__all__ = ["RULES", "SYNTAX"]
