"""Structural comparison of expressions, ignoring redundant parentheses. Column references are
canonical by the time this runs (bind.py: unqualified for one relation, qualified by relation
when several are fused), so equal structure means the same columns."""

from __future__ import annotations

from sqlglot import exp

__all__ = ["matches_key", "same"]


def _bare(node):
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def same(a: exp.Expression, b: exp.Expression) -> bool:
    """a and b are the same expression up to parentheses (no copies: this runs often)."""
    a, b = _bare(a), _bare(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, exp.Identifier):
        return a.this == b.this and bool(a.args.get("quoted")) == bool(b.args.get("quoted"))
    keys = {k for k, v in a.args.items() if v not in (None, [], False)} | {
        k for k, v in b.args.items() if v not in (None, [], False)
    }
    for key in keys:
        x, y = a.args.get(key), b.args.get(key)
        if isinstance(x, list) or isinstance(y, list):
            x, y = x or [], y or []
            if len(x) != len(y):
                return False
            for u, v in zip(x, y, strict=True):
                if isinstance(u, exp.Expression) and isinstance(v, exp.Expression):
                    if not same(u, v):
                        return False
                elif u != v:
                    return False
        elif isinstance(x, exp.Expression) and isinstance(y, exp.Expression):
            if not same(x, y):
                return False
        elif x != y:
            return False
    return True


def matches_key(node: exp.Expression, keys: list[exp.Expression]) -> int | None:
    for i, key in enumerate(keys):
        if same(node, key):
            return i
    return None
