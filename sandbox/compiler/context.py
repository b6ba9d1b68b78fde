"""What every validation rule sees: the user's SQL, the catalog, and (after binding) the bound query."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from sqlglot import exp

from sandbox.errors import SQLRejected

if TYPE_CHECKING:
    from sandbox.catalog import Catalog
    from sandbox.compiler.contribution import Contribution
    from sandbox.compiler.scope import Bound

__all__ = ["Context", "position", "suggest"]


def position(sql: str, node: exp.Expression | None) -> tuple[int | None, int | None]:
    """1-based line and column of a node in the user's SQL (from the token that sqlglot kept
    for it or its first descendant that has one)."""
    if node is None:
        return None, None
    for candidate in (node, *node.find_all(exp.Expression)):
        meta = candidate.meta if candidate._meta else {}
        if "start" in meta:
            start = int(meta["start"])
            line = sql.count("\n", 0, start) + 1
            column = start - (sql.rfind("\n", 0, start) + 1) + 1
            return line, column
    return None, None


def suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}? " if close else ""


@dataclass
class Context:
    sql: str
    catalog: Catalog
    bound: Bound | None = None
    contribution: Contribution | None = None
    group_keys: list[exp.Expression] = field(default_factory=list)

    def reject(self, node: exp.Expression | None, construct: str, reason: str, fix: str, rule: str) -> NoReturn:
        line, column = position(self.sql, node)
        raise SQLRejected(construct, reason, fix, rule=rule, line=line, column=column, sql=self.sql)

    @property
    def scope(self):
        assert self.bound is not None
        return self.bound.scope
