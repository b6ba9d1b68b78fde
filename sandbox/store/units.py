"""Privacy amounts as the store keeps them: integers of nano-epsilon and atto-delta.

Charges round up and budgets round down, never in the user's favour; the tolerance absorbs
float noise (0.1 * 1e9 is 100000000.00000001). A positive charge always costs at least one unit,
so no release is ever free however small its epsilon.

>>> charge_units(0.1, 0.0), budget_units(0.3, 1e-6)
((100000000, 0), (300000000, 1000000000000))
"""

from __future__ import annotations

import math

from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT

__all__ = ["DELTA_UNIT", "EPSILON_UNIT", "budget_units", "charge_units"]


def charge_units(epsilon: float, delta: float) -> tuple[int, int]:
    eps, dlt = math.ceil(epsilon * EPSILON_UNIT - 1e-6), math.ceil(delta * DELTA_UNIT - 1e-6)
    return (max(eps, 1) if epsilon > 0 else eps), (max(dlt, 1) if delta > 0 else dlt)


def budget_units(epsilon: float, delta: float) -> tuple[int, int]:
    return math.floor(epsilon * EPSILON_UNIT + 1e-6), math.floor(delta * DELTA_UNIT + 1e-6)
