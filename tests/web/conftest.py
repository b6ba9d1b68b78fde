"""Console fixtures: an in-process app per test module (seeded people and agreements, its own
database next to the session's demo catalog) and clients signed in through the sign-in form."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from sandbox.api import create_app
from sandbox.catalog import Catalog
from sandbox.jobs import JobService
from sandbox.settings import Settings
from sandbox.store import Store
from tests.web import seed

with warnings.catch_warnings():  # starlette suggests another httpx; the one installed works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([0-9a-f]*)"')


def known_columns(catalog: Catalog) -> dict[str, set[str]]:
    return {d.name: set(d.policy.queryable()) for d in catalog.list() if not d.policy.public}


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Console:
    app: FastAPI
    store: Store
    people: seed.People

    def client(self, role: str | None = None) -> TestClient:
        """A browser-like client, signed in through the sign-in form when `role` is given."""
        client = TestClient(self.app, base_url="http://testserver", follow_redirects=False)
        if role is not None:
            form = client.get("/console/signin")
            token = self.people.tokens[role]
            response = client.post("/console/signin", data={"csrf": csrf_of(form.text), "token": token})
            assert response.status_code == 303, response.text
        return client


def make_console(data_dir: Path, database: Path, *, busy: int = 0) -> Console:
    store = Store(database)
    people = seed.people(store, known_columns(Catalog(data_dir)))
    if busy:
        seed.busy_log(store, people, busy)
    app = create_app(Settings(data_dir=data_dir, DATABASE_URL=str(database), workers=1))
    services = app.state.services
    # The console only lists jobs; a job service without an engine lists them with the real code
    # and spares each test app the engine's worker start-up (about 3 s). No lifespan runs here.
    services.__dict__["jobs"] = JobService(services.store, services.catalog, engine=None)  # type: ignore[arg-type]
    return Console(app, store, people)


@pytest.fixture(scope="module")
def console_factory(demo_catalog: Catalog,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Console]]:
    made: list[Console] = []

    def make(busy: int = 0) -> Console:
        console = make_console(demo_catalog.data_dir, tmp_path_factory.mktemp("console") / "sandbox.db", busy=busy)
        made.append(console)
        return console

    yield make
    for console in made:
        console.app.state.services.jobs.close()
        console.app.state.services.store.close()
        console.store.close()


@pytest.fixture(scope="module")
def console(console_factory: Callable[..., Console]) -> Console:
    """One seeded console per test module (tests that change state use `fresh_console`)."""
    return console_factory()


@pytest.fixture
def fresh_console(console_factory: Callable[..., Console]) -> Console:
    return console_factory()
