"""Service-level fixtures: a real metadata store on SQLite *and* PostgreSQL, seeded accounts and
an approved agreement, a shared engine, real server subprocesses and a look at their processes.

Every store test runs against both backends (`database` is parametrized), because the bugs these
tests are for — lost updates, lock ordering, DDL races — differ between the two.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandbox import accounts, agreements
from sandbox.accounts import User
from sandbox.audit import Journal
from sandbox.catalog import Catalog
from sandbox.engine import Engine
from sandbox.store import Store
from tests.support.server import Server

# -- the metadata store, on both backends ---------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty metadata database: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "sandbox.db")
    return request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
def store(database: str, tmp_path: Path) -> Iterator[Store]:
    """The store as a server with the data directory `tmp_path` opens it: its appends are
    recorded in that directory's audit journal too."""
    opened = Store(database, journal=Journal.of(tmp_path, database))
    yield opened
    opened.close()


@dataclass(frozen=True)
class World:
    """The people and the agreement a service test needs, with their bearer tokens."""

    admin: User
    operator: User
    auditor: User
    developer: User
    agreement_id: str
    tokens: dict[str, str]


# The agreement covers the demo's residents, whatever catalog (if any) the test uses.
RESIDENTS = {"residents": {"district", "age", "sex", "household_size", "monthly_income"}}


def seed(store: Store, *, epsilon: float = 1.0, delta: float = 0.0) -> World:
    """Admin, operator, auditor, a licensed developer and one approved agreement over residents."""
    with store.transaction() as conn:
        admin, admin_token = accounts.create_user(conn, "Admin", "admin")
        operator, operator_token = accounts.create_user(conn, "Operator", "operator", by=admin)
        auditor, auditor_token = accounts.create_user(conn, "Auditor", "auditor", by=admin)
        _, developer, developer_token = accounts.create_licence(
            conn, operator, name="Developer", organisation="Xiamen University", licence_number="XM-TEST-0001",
            valid_from="2020-01-01", valid_to="2100-01-01")
        agreement = agreements.request(
            conn, developer, purpose="Service tests", legal_basis="Test data only",
            datasets={"residents": None}, valid_from="2020-01-01", valid_to="2100-01-01",
            epsilon=epsilon, delta=delta, known=RESIDENTS)
        agreements.approve(conn, operator, agreement["id"], reason="service tests")
    return World(admin, operator, auditor, developer, agreement["id"],
                 {"admin": admin_token, "operator": operator_token, "auditor": auditor_token,
                  "developer": developer_token})


@pytest.fixture(scope="session")
def engine(demo_catalog: Catalog) -> Iterator[Engine]:
    """One warm worker pool for the session's library-level job tests."""
    with Engine(demo_catalog, workers=2) as started:
        yield started


def as_api(verification: dict) -> dict:
    """A library verification (its __dict__) as `GET /audit/verify` answers it."""
    from sandbox.api.schemas import Verification

    return {name: verification[name] for name in Verification.model_fields}


# -- a real server subprocess ----------------------------------------------------------------


class Servers:
    """`servers(data_dir, database, workers=2, **settings)` -> a started `tests.support.server.Server`
    (uvicorn serving create_app, no policy registration: the session's demo catalog is reused;
    `settings` become SANDBOX_* variables); `servers.many(n, ...)` starts n of them at once.
    Servers given the same data directory and database share them, as several `sandbox serve`
    processes behind one balancer do. All are stopped and their logs removed afterwards."""

    def __init__(self) -> None:
        self.started: list[Server] = []

    def __call__(self, data_dir: Path, database: str, workers: int = 2, **settings: object) -> Server:
        return self.many(1, data_dir, database, workers, **settings)[0]

    def many(self, count: int, data_dir: Path, database: str, workers: int = 2, **settings: object) -> list[Server]:
        env = {f"SANDBOX_{name.upper()}": str(value) for name, value in settings.items()}
        servers = [Server(data_dir, database, workers=workers, env=env) for _ in range(count)]
        self.started += servers
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(Server.start, servers))
        return servers


@pytest.fixture
def server_factory() -> Iterator[Servers]:
    servers = Servers()
    yield servers
    for server in servers.started:
        server.close()


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


# -- processes -------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`, from /proc (every thread's children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_dead(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid is gone; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]
