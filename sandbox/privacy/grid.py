"""The integer grid sums are computed on. Shared by the catalog (which stores each measure's
quantized value at registration) and the planner (which derives sensitivities from it), so both
always agree on the grid."""

from __future__ import annotations

import math

from sandbox.policy import Column

__all__ = ["GRID_UNITS", "center_units", "clamp_bounds", "clamped_sql", "grid_step", "quantize", "sql_number"]

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
    return step_for(max(abs(t_lo), abs(t_hi)), integral=column.is_integer)


def step_for(largest: float, *, integral: bool) -> float:
    """The grid step for values within [-largest, largest]: 1 for whole numbers that fit in
    GRID_UNITS steps, else the power of two that keeps them within GRID_UNITS steps (exact in
    binary). Also 1 when there is nothing to keep: bounds at 0, or so close to 0 that
    largest / GRID_UNITS underflows (VAR(x / 1e308) squares to 0; log2(0) raised, found by the
    fuzzer): every value is then 0 on the grid."""
    ratio = largest / GRID_UNITS
    if (integral and largest <= GRID_UNITS) or not ratio > 0:
        return 1.0
    return 2.0 ** math.ceil(math.log2(ratio))


def quantize(value: float, step: float) -> int:
    """`value` on the grid as DuckDB's ROUND puts it (half away from zero; Python's round goes
    half to even, which would put a bound like 1000000.5 one step below the stored value and
    understate the sensitivity)."""
    units = abs(value) / step
    return int(math.copysign(math.floor(units + 0.5), value))


def center_units(column: Column) -> int:
    """The middle of the column's bounds on its (power-1) grid, which a centred sum is taken from."""
    lo, hi = clamp_bounds(column)
    step = grid_step(column)
    return (quantize(lo, step) + quantize(hi, step)) // 2


def sql_number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def sql_double(value: float) -> str:
    """A constant that multiplies a released count: as DOUBLE, because an integer literal times a
    BIGINT count is INT64 arithmetic, which overflows for a centre near 2**62 (found by the fuzzer)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def clamped_sql(ref: str, lo: float, hi: float) -> str:
    """`ref` clamped to [lo, hi] as DOUBLE, NULL kept NULL: DuckDB's GREATEST skips NULLs
    (GREATEST(NULL, 10) is 10), which would turn a missing value into a bound inside a sum."""
    value = f"CAST({ref} AS DOUBLE)"
    return f"CASE WHEN {value} IS NULL THEN NULL ELSE LEAST(GREATEST({value}, {sql_number(lo)}), {sql_number(hi)}) END"
