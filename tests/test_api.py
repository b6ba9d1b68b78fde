"""The server the demo starts: health and the catalog (never rows), one error shape."""

from __future__ import annotations

import httpx
import pytest

from sandbox.api import create_app
from sandbox.settings import Settings


@pytest.fixture()
def client(demo_catalog):
    app = create_app(Settings(data_dir=demo_catalog.data_dir))
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://sandbox")


async def _get(client, path):
    async with client:
        return await client.get(path)


def test_health_and_catalog(client, demo_catalog) -> None:
    import asyncio

    health = asyncio.run(_get(client, "/health"))
    assert health.status_code == 200 and health.json()["datasets"] == len(demo_catalog.names())


@pytest.mark.parametrize("path,status,code", [
    ("/datasets/residents", 200, None),
    ("/datasets/residentz", 404, "dataset_not_found"),
])
def test_dataset_routes(client, path, status, code) -> None:
    import asyncio

    response = asyncio.run(_get(client, path))
    assert response.status_code == status
    body = response.json()
    if code:
        assert body["error"]["code"] == code and "Did you mean 'residents'" in body["error"]["message"]
    else:
        assert body["privacy_unit"]["column"] == "person_id"
        assert "rows" not in body
