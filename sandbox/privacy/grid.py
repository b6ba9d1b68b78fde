"""The integer grid sums are computed on. Shared by the catalog (which stores each measure's
quantized value at registration) and the planner (which derives sensitivities from it), so both
always agree on the grid."""

from __future__ import annotations

import math

from sandbox.policy import Column

__all__ = ["GRID_UNITS", "clamp_bounds", "grid_step"]

GRID_UNITS = 2**20  # a clamped value is at most 2**20 grid steps from 0


def clamp_bounds(column: Column) -> tuple[float, float]:
    """The policy bounds, tightened to whole numbers for integer columns."""
    assert column.bounds is not None
    lo, hi = column.bounds
    if column.is_integer:
        return float(math.ceil(lo)), float(math.floor(hi))
    return float(lo), float(hi)


def grid_step(column: Column, power: int = 1) -> float:
    """Step of the grid for SUM(clamp(x)**power): 1 for integers that fit, else the power of two
    that keeps every clamped value within GRID_UNITS steps (a power of two is exact in binary)."""
    lo, hi = clamp_bounds(column)
    t_lo, t_hi = (lo, hi) if power == 1 else (0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi), max(lo * lo, hi * hi))
    largest = max(abs(t_lo), abs(t_hi))
    if column.is_integer and largest <= GRID_UNITS:
        return 1.0
    return 2.0 ** math.ceil(math.log2(largest / GRID_UNITS))
