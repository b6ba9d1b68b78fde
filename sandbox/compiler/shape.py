"""Structural comparison of expressions, ignoring table qualifiers (there is one dataset)."""

from __future__ import annotations

from sqlglot import exp

__all__ = ["matches_key", "same", "unqualified"]


def unqualified(node: exp.Expression) -> exp.Expression:
    def strip(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and n.table:
            return exp.column(n.name, quoted=n.this.quoted)
        if isinstance(n, exp.Paren):
            return n.this
        return n

    return node.copy().transform(strip)


def same(a: exp.Expression, b: exp.Expression) -> bool:
    return unqualified(a) == unqualified(b)


def matches_key(node: exp.Expression, keys: list[exp.Expression]) -> int | None:
    for i, key in enumerate(keys):
        if same(node, key):
            return i
    return None
