"""Run a query as the worker runs it and check the honest-numbers promise on what it releases."""

from __future__ import annotations

from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits


def assert_released_cells_have_intervals(sql: str, catalog) -> list[dict]:
    """Every released non-key cell has both interval ends around its value, except a ratio whose
    denominator may be 0, which the release says. Returns the released rows."""
    plan = compile_query(sql, catalog, epsilon=1.0)
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        output = run_plan(con, plan)
    finally:
        con.close()
    said = [str(n) for n in output["notes"]]  # notes are data; str() is the English sentence
    rows = output["table"].to_pylist()
    for row in rows:
        if row["__suppressed"]:
            continue
        values = list(row.values())
        for i, column in enumerate(plan.outputs):
            if column.kind == "key":
                continue
            value, lo, hi = values[i], row[f"__lo_{i}"], row[f"__hi_{i}"]
            if value is not None and None in (lo, hi):
                # a ratio's denominator, or a regression's noisy variance of x, may reach 0
                assert "/" in sql or "REGR_" in sql.upper(), f"{column.name}: no interval ({sql})"
                assert any(f"of {column.name} have no finite interval" in n for n in said), said
                continue
            assert lo is not None and hi is not None, f"{column.name}: no interval ({sql})"
            if isinstance(value, float) and value == value:
                slack = 1e-6 * max(1.0, abs(value))
                assert lo - slack <= value <= hi + slack, f"{column.name}: {value} outside [{lo}, {hi}] ({sql})"
    return rows
