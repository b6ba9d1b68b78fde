"""The sandbox: licensed developers use public-sector data without seeing it.

Only differentially private aggregates leave; see README.md and docs/ for the guarantees.
"""

from __future__ import annotations

from sandbox._version import __version__

__all__ = ["__version__"]


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext sandbox` registers the `%%dpsql` cell magic (sandbox/magic.py)."""
    from sandbox.magic import load_ipython_extension as load

    load(ipython)
