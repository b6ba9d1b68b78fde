"""How DuckDB prints a DOUBLE inside a row's text (the text registration hashes into a
row's rank). Self-contained on purpose: Spark registration ships these functions to the cluster's
executors by value, where this package is not installed."""

from __future__ import annotations

import math

__all__ = ["double_text"]


def double_text(value: float | None) -> str | None:
    """A DOUBLE as DuckDB prints it inside a row: Python's repr, and NaN with its sign."""
    if value is None:
        return None
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return repr(value)
