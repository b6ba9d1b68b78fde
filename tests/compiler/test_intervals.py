"""Every released number has an interval: every accepted query of tests/compiler/*.sql, run as
the worker runs it on the demo city, gives every non-key cell both ends of a 95% interval
(noise and estimated bias), around the released value; an open end only where a ratio's
denominator may be 0, and then the release says so."""

from __future__ import annotations

import pytest

from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from tests.compiler.cases import load_cases

ACCEPTED = load_cases("accepted.sql") + load_cases("joins_accepted.sql") + load_cases("typed_accepted.sql")


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.title for c in ACCEPTED])
def test_every_released_cell_has_an_interval(case, demo_catalog) -> None:
    plan = compile_query(case.sql, demo_catalog, epsilon=1.0)
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        output = run_plan(con, plan)
    finally:
        con.close()
    rows = output["table"].to_pylist()
    for row in rows:
        if row["__suppressed"]:
            continue
        for i, column in enumerate(plan.outputs):
            if column.kind == "key":
                continue
            value = list(row.values())[i]
            lo, hi = row[f"__lo_{i}"], row[f"__hi_{i}"]
            if value is not None and None in (lo, hi):
                # the one open case: a ratio whose denominator's interval reaches 0, and the release says so
                assert "/" in case.sql, f"{column.name}: no interval ({plan.output_sql})"
                said = [str(n) for n in output["notes"]]  # notes are data; str() is the English sentence
                assert any(f"of {column.name} have no finite interval" in n for n in said), said
                continue
            assert lo is not None and hi is not None, f"{column.name}: no interval ({plan.output_sql})"
            if value is not None and isinstance(value, float) and value == value:
                assert lo <= value + 1e-6 * max(1.0, abs(value)) and value <= hi + 1e-6 * max(1.0, abs(value)), (
                    f"{column.name}: {value} outside [{lo}, {hi}]"
                )
