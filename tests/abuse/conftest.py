"""Abuse-control fixtures: an in-process app over the session's demo catalog with its own
metadata store (SQLite or PostgreSQL) and settings, and the seeded people of the service tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from sandbox.api import create_app
from sandbox.settings import Settings
from tests.api.conftest import asgi_client
from tests.service.conftest import (  # noqa: F401  (fixtures: both backends, a warm engine, real servers)
    database,
    engine,
    server_factory,
    store,
)

AppClient = Callable[..., AbstractContextManager[tuple[Any, httpx.Client]]]


@pytest.fixture
def app_client(demo_catalog, database: str) -> AppClient:  # noqa: F811
    """`with app_client(**settings) as (app, client):` an app with its lifespan run."""

    @contextmanager
    def start(**settings: Any) -> Iterator[tuple[Any, httpx.Client]]:
        app = create_app(Settings(data_dir=demo_catalog.data_dir, DATABASE_URL=database, workers=1, **settings))
        with asgi_client(app) as client:
            yield app, client

    return start


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
