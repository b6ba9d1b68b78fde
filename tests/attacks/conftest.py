"""The attacker's world: a real sandbox server over a demo data directory, and the people in it.

One data directory for the package: the demo city, the PUMS samples, and `rare`, a dataset made
here so that one private group key belongs to exactly one person. Its managed files are hashed
once; every attack case checks they are still byte-identical afterwards.

One server per test module (`running_server`: uvicorn in its own process group, engine workers
spawned from it), each with its own metadata database seeded directly in the store:

    mallory   the attacker: a licensed developer with valid tokens and arbitrary SQL, and
              agreements in several states (active, small, narrow, requested, revoked)
    bob       another licensed developer, with his own agreement and a released job
    carol     a developer whose licence was suspended after her agreement was approved
    operator, auditor, admin   staff
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from sandbox import accounts, agreements
from sandbox.catalog import Catalog
from sandbox.demo import build_demo
from sandbox.store import Store
from tests.conftest import POLICIES
from tests.support.server import Server, running_server

# A rare private key: 'singleton' is the category of one person (who has many rows); the
# other categories have hundreds of people each.
RARE_POLICY = """\
name: rare
title: One person's rare category (attack tests)
description: Made by tests/attacks/conftest.py; the key 'singleton' belongs to one person only.
owner: Attack tests
domain: person
source:
  kind: parquet
  location: "{location}"
privacy_unit:
  column: person_id
  max_rows: 5
  max_groups: 2
columns:
  person_id: {{role: identifier, type: BIGINT, description: The privacy unit.}}
  category: {{role: dimension, type: VARCHAR, description: Private keys (no public key set).}}
  city: {{role: dimension, type: VARCHAR, description: Public keys., keys: [North, South]}}
  amount: {{role: measure, type: DOUBLE, description: Bounded measure., bounds: [0, 100]}}
limits:
  max_epsilon_per_query: 1.0
  min_count: 0
  round_to: 1
default_delta: 1.0e-7
"""

RARE_ROWS = """
SELECT person_id,
       CASE WHEN person_id = 1000 THEN 'singleton'
            WHEN person_id <= 400 THEN 'common_a'
            WHEN person_id <= 800 THEN 'common_b'
            ELSE 'common_c' END AS category,
       CASE WHEN person_id % 2 = 0 THEN 'North' ELSE 'South' END AS city,
       CAST((person_id * 37 + visit) % 100 AS DOUBLE) AS amount
FROM range(1, 1001) AS p(person_id),
     LATERAL range(0, CASE WHEN person_id = 1000 THEN 30 ELSE 3 END) AS v(visit)
"""

EVERY_DATASET = ("residents", "social_insurance", "medical_visits", "enterprises", "pums_null", "rare")


@dataclass(frozen=True)
class AttackData:
    data_dir: Path
    hashes: dict[str, str]  # managed file (relative path) -> sha256

    def current_hashes(self) -> dict[str, str]:
        return _hash_files(self.data_dir)

    def exact(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with one read-only view per dataset over its managed Parquet, for
        the exact answers that releases are compared with (never through the server)."""
        con = duckdb.connect()
        for parquet in sorted((self.data_dir / "datasets").glob("*/data.parquet")):
            literal = str(parquet).replace("'", "''")
            con.execute(f'CREATE VIEW "{parquet.parent.name}" AS SELECT * FROM read_parquet(\'{literal}\')')
        return con


def _hash_files(data_dir: Path) -> dict[str, str]:
    """The managed data: every dataset's Parquet, engine DuckDB file and manifest, and the
    server secret behind the keyed row ranks."""
    files = sorted((data_dir / "datasets").glob("*/*")) + [data_dir / "secret.key"]
    return {str(f.relative_to(data_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


@pytest.fixture(scope="package")
def attack_data(tmp_path_factory: pytest.TempPathFactory) -> AttackData:
    data_dir = tmp_path_factory.mktemp("attack-data")
    build_demo(data_dir / "demo", scale=5_000)
    catalog = Catalog(data_dir)
    catalog.register_directory(POLICIES)
    rare = data_dir / "rare-source"
    rare.mkdir()
    duckdb.sql(RARE_ROWS).write_parquet(str(rare / "rare.parquet"))
    (rare / "rare.yaml").write_text(RARE_POLICY.format(location=rare / "rare.parquet"))
    catalog.register_directory(rare)
    assert "rare" in catalog.names()
    return AttackData(data_dir, _hash_files(data_dir))


@dataclass
class World:
    """A running server and everything a case may refer to by name."""

    server: Server
    data: AttackData
    tokens: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # One client (one connection pool) for every request: a new httpx.Client per request
        # costs more CPU than most of the requests it would send.
        self.http = httpx.Client(base_url=self.url, timeout=120)

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, who: str | None = "mallory", **extra: str) -> dict[str, str]:
        """`who`'s bearer token (None: no Authorization header) and any other headers."""
        return ({"Authorization": f"Bearer {self.tokens[who]}"} if who else {}) | extra

    def request(self, who: str | None, method: str, path: str, *, headers: dict[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers=self.headers(who, **(headers or {})), **kwargs)

    def names(self) -> dict[str, str]:
        """Placeholders a case may use: ${agreement}, ${bob_job}, ${carol_token}, ..."""
        tokens = {f"{who}_token": token for who, token in self.tokens.items()}
        return self.ids | tokens | {"data_dir": str(self.data.data_dir), "huge_token": "sbx_" + "x" * 10_000}


def _seed(store: Store, catalog: Catalog) -> tuple[dict[str, str], dict[str, str]]:
    """Accounts, licences and agreements, made directly in the store (what is attacked is the
    API, not the set-up)."""
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    everything = {name: None for name in EVERY_DATASET}
    columns = {dataset.name: set(dataset.policy.queryable()) for dataset in catalog.list()}
    with store.transaction() as conn:
        admin, tokens["admin"] = accounts.create_user(conn, "Admin", "admin")
        operator, tokens["operator"] = accounts.create_user(conn, "Operator", "operator", by=admin)
        _, tokens["auditor"] = accounts.create_user(conn, "Auditor", "auditor", by=admin)
        developers = {}
        for name in ("mallory", "bob", "carol"):
            licence, developers[name], tokens[name] = accounts.create_licence(
                conn, operator, name=name.title(), organisation="Attack tests", licence_number=f"XM-ATTACK-{name}",
                valid_from="2020-01-01", valid_to="2100-01-01")
            ids[f"{name}_licence"] = licence["id"]

        def agreement(who: str, scope: dict[str, list[str] | None], epsilon: float, *, approve: bool = True,
                      **decision: Any) -> str:
            row = agreements.request(
                conn, developers[who], purpose="Attack tests", legal_basis="Test data only", datasets=scope,
                valid_from="2020-01-01", valid_to="2100-01-01", epsilon=epsilon, delta=1e-4,
                known={name: columns[name] for name in scope})
            if approve:
                agreements.approve(conn, operator, row["id"], **decision)
            return row["id"]

        ids["agreement"] = agreement("mallory", everything, 100.0)
        ids["small_agreement"] = agreement("mallory", {"residents": None}, 0.3)
        ids["narrow_agreement"] = agreement("mallory", {"residents": ["district", "sex"]}, 5.0)
        ids["strict_agreement"] = agreement("mallory", {"residents": None}, 5.0, per_query_epsilon=0.2,
                                            min_count=50, round_to=10)
        ids["requested_agreement"] = agreement("mallory", {"residents": None}, 5.0, approve=False)
        ids["revoked_agreement"] = agreement("mallory", {"residents": None}, 5.0)
        agreements.revoke(conn, operator, ids["revoked_agreement"], "attack tests: revoked on purpose")
        ids["bob_agreement"] = agreement("bob", {"residents": None}, 5.0)
        ids["carol_agreement"] = agreement("carol", {"residents": None}, 5.0)
        accounts.suspend_licence(conn, operator, ids["carol_licence"], "attack tests: suspended on purpose")
    return tokens, ids


@contextmanager
def started_world(data: AttackData, database: Path, **env: str) -> Iterator[World]:
    """Seed a new metadata database and serve it over `data`, with short engine limits (resource
    attacks end quickly either way) and no rate limit (the corpus and the fuzzer send a few
    hundred requests a minute; tests/abuse tests the limits)."""
    store = Store(str(database))
    try:
        tokens, ids = _seed(store, Catalog(data.data_dir))
    finally:
        store.close()
    env = {"SANDBOX_QUERY_SECONDS": "15", "SANDBOX_MAX_WAIT_SECONDS": "30", "SANDBOX_JOBS_PER_MINUTE": "0"} | env
    with running_server(data.data_dir, f"sqlite:///{database}", workers=2, env=env) as server:
        world = World(server, data, tokens, ids)
        try:
            yield world
        finally:
            world.http.close()


@pytest.fixture(scope="module")
def world(attack_data: AttackData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with started_world(attack_data, tmp_path_factory.mktemp("attack-store") / "sandbox.db") as world:
        job = world.request("bob", "POST", "/jobs", json={
            "sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.1, "agreement_id": world.ids["bob_agreement"],
            "wait": 30})
        assert job.status_code == 201 and job.json()["status"] == "released", job.text
        world.ids["bob_job"] = job.json()["id"]
        yield world
