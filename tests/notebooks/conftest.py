"""Notebook tests execute the notebooks in real IPython kernels (nbclient) against a live sandbox."""

from __future__ import annotations

from tests.support.live import live  # noqa: F401  (fixture)
