"""Expressions nest at most MAX_DEPTH levels (chains of AND or of OR count as one level).

Why: the compiler and the engine both walk expressions recursively, and DuckDB refuses SQL
nested more than 1,000 levels. A limit checked here, on the text alone, refuses such a query
before anything is charged, with a message, instead of letting it fail later."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context

NAME = "bounded_depth"
MAX_DEPTH = 100


def check(query: exp.Expression, ctx: Context) -> None:
    stack: list[tuple[exp.Expression, int]] = [(query, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            ctx.reject(
                node,
                f"An expression nested more than {MAX_DEPTH} levels deep",
                "the sandbox compiles and runs expressions of bounded depth",
                "Simplify it: e.g. x IN (1, 2, 3) instead of a long chain of OR, or one comparison instead of a "
                "long sum of constants.",
                NAME,
            )
        for child in node.iter_expressions():
            flat = isinstance(child, exp.Connector) and type(child) is type(node)
            stack.append((child, depth if flat else depth + 1))
