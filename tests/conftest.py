"""Shared fixtures. Real parts only: DuckDB, SQLite and a PostgreSQL server the suite starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.catalog import Catalog
from sandbox.compiler.cache import PLANS
from sandbox.demo import build_demo

pytest_plugins = ["tests.support.postgres"]

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
PUMS = REPO.parent / "shared" / "data" / "pums"
DEMO_SCALE = 5_000


@pytest.fixture(autouse=True)
def _fresh_plans() -> None:
    """Every test compiles afresh: a test that changes the compiler (monkeypatch) is never
    answered with a plan an earlier test compiled (sandbox/compiler/cache.py)."""
    PLANS.clear()


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The demo city at a small scale plus the PUMS samples, registered from policies/."""
    data_dir = tmp_path_factory.mktemp("sandbox-data")
    build_demo(data_dir / "demo", scale=DEMO_SCALE)
    catalog = Catalog(data_dir)
    catalog.register_directory(POLICIES)
    return catalog
