"""Structural comparison of expressions. Column references are canonical by the time this runs
(from_clause: unqualified for one relation, qualified by relation when several are fused), so
only redundant parentheses need ignoring."""

from __future__ import annotations

from sqlglot import exp

__all__ = ["matches_key", "same", "unqualified"]


def unqualified(node: exp.Expression) -> exp.Expression:
    """A copy without redundant parentheses (the name is historical: qualifiers are canonical)."""
    return node.copy().transform(lambda n: n.this if isinstance(n, exp.Paren) else n)


def same(a: exp.Expression, b: exp.Expression) -> bool:
    return unqualified(a) == unqualified(b)


def matches_key(node: exp.Expression, keys: list[exp.Expression]) -> int | None:
    for i, key in enumerate(keys):
        if same(node, key):
            return i
    return None
