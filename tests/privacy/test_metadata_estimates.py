"""Estimates from the DP statistics released at registration (sandbox/metadata.py) tell noise
from what bounding and clamping really leave out: empty bins whose noise is within a few standard
deviations make up nothing, a real tail is still seen."""

from __future__ import annotations

import pytest

from sandbox import metadata
from sandbox.compiler import planner


def _units(counts: list[int], cap: int, scale: float) -> dict:
    bins = metadata.unit_bins(cap)
    assert len(bins) == len(counts)
    return {"rows_per_unit": {"bins": [list(b) for b in bins], "units": counts, "scale": scale}}


@pytest.mark.parametrize(
    ("counts", "cap", "left_out"),
    [
        # one row per person, the noise of empty bins (scale 10: a floor of 42 units) is not rows left out
        ([5000, 20, -5, 15, 10, -3, 30], 1, 0.0),
        ([5000, 41, 41, 41, 41, 41, 41], 1, 0.0),
        # a real tail beyond the cap is seen: 300 units of 2 rows and 100 of 4 leave 600 of 6,000 rows out
        ([5000, 300, 0, 100, 0, 0, 0], 1, 0.1),
    ],
)
def test_rows_left_out_count_only_bins_beyond_their_noise(counts, cap, left_out) -> None:
    assert metadata.dropped_share(_units(counts, cap, 10.0), cap) == pytest.approx(left_out, abs=1e-3)


def test_a_share_beyond_a_bound_must_exceed_its_noise_to_count() -> None:
    """Every bin of the column (NULL, 3 below, 16 inside, 3 above) at scale 10 over 1,000 values:
    40 values below the lower bound are within 4 standard errors of noise (about 98), 200 are not."""
    inside = [60] * metadata.INSIDE_BINS
    for below, counts_as_clamped in ((40, False), (200, True)):
        counts = [0, 0, 0, below, *inside, 0, 0, 0]
        stats = {"columns": {"x": {"bounds": [0.0, 100.0], "counts": counts, "scale": 10.0}}}
        found = metadata.clamped(stats, "x", 0.0, 100.0)
        significant = found["below"] - planner.CLAMP_SIGNIFICANCE * found["noise"] > 0
        assert significant is counts_as_clamped, found
