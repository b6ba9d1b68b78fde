"""Every released number has an interval: every accepted query of tests/compiler/*.sql, run as
the worker runs it on the demo city, gives every non-key cell both ends of a 95% interval
(noise and estimated bias), around the released value; an open end only where a ratio's
denominator may be 0, and then the release says so."""

from __future__ import annotations

import pytest

from tests.compiler.cases import load_cases
from tests.support.intervals import assert_released_cells_have_intervals

ACCEPTED = load_cases("accepted.sql") + load_cases("joins_accepted.sql") + load_cases("typed_accepted.sql")


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.title for c in ACCEPTED])
def test_every_released_cell_has_an_interval(case, demo_catalog) -> None:
    assert_released_cells_have_intervals(case.sql, demo_catalog)


@pytest.mark.parametrize(
    ("bounds", "noisy", "facts"),
    [
        ((0.0, 100.0), -5000, {"below": 0.01, "below_excess": 20.0}),  # clipped to 0, a tail below 0 estimated
        ((0.0, 100.0), -5000, {}),
        ((-100.0, 0.0), 5000, {"above": 0.01, "above_excess": 20.0}),
        ((-100.0, 0.0), 5000, {}),
    ],
)
def test_a_clipped_sum_lies_inside_its_interval(bounds, noisy, facts) -> None:
    """A noisy sum far on the wrong side of 0 is released as 0 (its bounds make the sign certain);
    its interval must reach 0 too, also when the DP metadata estimates values beyond a bound (CI
    failure: 0.0 released with the interval [-78807, -11711])."""
    import duckdb

    from sandbox.compiler import intervals

    facts = intervals.ColumnFacts(bounds, **facts)
    lo, hi = intervals.sum_interval("s", 100.0, facts, "n")
    clip = intervals.at_least("s", 0) if bounds[0] >= 0 else intervals.at_most("s", 0)
    query = f"SELECT {clip}, {lo}, {hi} FROM (SELECT {noisy} AS s, 50 AS n)"
    value, low, high = duckdb.connect().execute(query).fetchone()
    assert value == 0 and low <= value <= high, (value, low, high)
