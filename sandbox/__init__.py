"""The sandbox: licensed developers use public-sector data without seeing it.

Only differentially private aggregates leave; see README.md and docs/ for the guarantees.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
