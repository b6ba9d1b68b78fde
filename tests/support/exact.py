"""Exact answers of a plan's *generated* SQL, for tests only: the product has no way to skip
the noise; tests read what the bounded SQL computes, on the same read-only files."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from sandbox.compiler.plan import Plan


def with_totals(plan: Plan, result: dict[tuple, dict[str, Any]]) -> None:
    """Counts the engine takes from a histogram's total (Primitive.from_histogram), as it does."""
    for p in plan.primitives:
        if p.from_histogram is not None:
            for values in result.values():
                values[p.id] = sum(values.get(p.from_histogram, {}).values())


def exact_primitives(plan: Plan) -> dict[tuple, dict[str, Any]]:
    """group key -> {primitive id: exact value}; quantile primitives map to {bin: count}."""
    con = duckdb.connect()
    try:
        for alias, path in plan.attach.items():
            con.execute(f"ATTACH '{path}' AS \"{alias}\" (READ_ONLY)")
        nkeys = len(plan.key_names)
        cursor = con.execute(plan.aggregate_sql)
        names = [d[0] for d in cursor.description][nkeys:]
        result: dict[tuple, dict[str, Any]] = defaultdict(dict)
        for row in cursor.fetchall():
            result[tuple(row[:nkeys])].update(zip(names, row[nkeys:], strict=True))
        for pid, sql in plan.histogram_sql.items():
            for row in con.execute(sql).fetchall():
                result[tuple(row[:nkeys])].setdefault(pid, {})[int(row[nkeys])] = int(row[nkeys + 1])
        with_totals(plan, result)
        return dict(result)
    finally:
        con.close()
