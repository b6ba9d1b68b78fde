"""CLI tests run the `sandbox` command of this virtual environment, as a user would."""

from __future__ import annotations

from tests.support.live import live  # noqa: F401  (fixture)
