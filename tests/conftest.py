"""Shared fixtures. Real parts only: DuckDB, SQLite and a PostgreSQL server the suite starts."""

from __future__ import annotations

pytest_plugins = ["tests.support.postgres"]
