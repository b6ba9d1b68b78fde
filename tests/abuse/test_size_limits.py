"""Size limits: SQL stops at 20,000 characters (the request schema and the compiler), and every
HTTP body at `max_body_bytes` (413 `payload_too_large`), whether it declares its length or not."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox.compiler import compile_query
from sandbox.errors import SQLRejected
from sandbox.settings import Settings
from tests.abuse.conftest import bearer
from tests.service.conftest import seed
from tests.support.server import Server


def long_sql(chars: int) -> str:
    sql = "SELECT COUNT(*) FROM residents WHERE age > 1"
    return sql + " " * (chars - len(sql))


def test_the_compiler_refuses_sql_over_20000_characters(demo_catalog) -> None:
    compile_query(long_sql(20_000), demo_catalog, epsilon=0.1)
    with pytest.raises(SQLRejected) as refused:
        compile_query(long_sql(20_001), demo_catalog, epsilon=0.1)
    assert "20,000" in refused.value.message or "20000" in refused.value.message


def test_the_default_body_limit_holds_the_longest_sql() -> None:
    """20,000 characters, each escaped as \\uXXXX in JSON, still fit the default limit."""
    body = json.dumps({"sql": "\u4e2d" * 20_000, "epsilon": 0.1, "agreement_id": "x" * 36}, ensure_ascii=True)
    assert len(body.encode()) < Settings().max_body_bytes


def test_http_bodies_over_the_limit_get_413(store, app_client) -> None:
    world = seed(store)
    developer = bearer(world.tokens["developer"])
    with app_client(max_body_bytes=4096) as (_, client):
        body = {"sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.1, "agreement_id": world.agreement_id}
        assert client.post("/explain", json=body, headers=developer).status_code == 200
        big = body | {"sql": long_sql(5_000)}
        refused = client.post("/explain", json=big, headers=developer)
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert error["code"] == "payload_too_large" and error["limit_bytes"] == 4096
        assert "the limit is 4,096 bytes" in error["message"] and "20,000 characters" in error["message"]



@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_real_server_refuses_a_chunked_body_over_the_limit(store, database, demo_catalog) -> None:
    """Through uvicorn's socket: a body sent in chunks, with no Content-Length, is counted as it
    arrives and refused once it passes the limit; a small chunked body is served as usual."""
    world = seed(store)
    developer = bearer(world.tokens["developer"]) | {"Content-Type": "application/json"}
    body = {"sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.1, "agreement_id": world.agreement_id}
    big = json.dumps(body | {"sql": long_sql(5_000)}).encode()
    small = json.dumps(body).encode()
    server = Server(demo_catalog.data_dir, database, env={"SANDBOX_MAX_BODY_BYTES": "4096"})
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            refused = client.post("/explain", content=iter([big[i:i + 1000] for i in range(0, len(big), 1000)]),
                                  headers=developer)
            assert refused.request.headers.get("Transfer-Encoding") == "chunked"
            assert refused.status_code == 413, refused.text
            error = refused.json()["error"]
            assert error["code"] == "payload_too_large" and "more than 4,096 bytes" in error["message"]
            declared = client.post("/explain", content=big, headers=developer)
            assert declared.status_code == 413 and f"{len(big):,} bytes" in declared.json()["error"]["message"]
            fine = client.post("/explain", content=iter([small[:10], small[10:]]), headers=developer)
            assert fine.status_code == 200, fine.text
    finally:
        server.close()


def test_http_sql_over_20000_characters_is_refused_with_the_field_named(store, app_client) -> None:
    world = seed(store)
    with app_client() as (_, client):
        body = {"sql": long_sql(20_001), "epsilon": 0.1, "agreement_id": world.agreement_id}
        refused = client.post("/jobs", json=body, headers=bearer(world.tokens["developer"]))
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["message"].startswith("sql:") and "20000" in error["message"]
