"""A real PostgreSQL server for the test session (a pytest plugin, see tests/conftest.py).

Mocks of a database hide exactly the bugs these tests are for (quoting, types, transactions),
so the suite runs the distribution's own server: a throw-away cluster in a temp directory,
listening on 127.0.0.1 on a free port with trust authentication, tuned for speed rather than
durability, stopped and deleted at the end of the session. PostgreSQL refuses to run as root,
so under root the server runs as the `postgres` OS user the Debian package creates.

Fixtures: `postgres_url` (database `sandbox_test`, shared by the session) and
`fresh_postgres_db` (a new empty database per test, dropped afterwards).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

__all__ = ["PostgresServer", "fresh_postgres_db", "postgres_server", "postgres_url"]

INSTALL = "run `apt-get install -y postgresql` (or `make sysdeps`), then run the tests again"
SUPERUSER = "postgres"
# Durability is worthless for a throw-away cluster; these make start-up and DDL fast.
_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def _bin_dir() -> Path:
    """The newest installed server's binaries (Debian keeps them off PATH, per version)."""
    installed = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    installed.sort(key=lambda d: [int(n) for n in re.findall(r"\d+", d.parent.name)])
    if installed:
        return installed[-1]
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {INSTALL}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """One cluster: its binaries, its directory, the OS user it runs as, and its port."""

    bin: Path
    root: Path
    os_user: str | None  # None: the current user
    port: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        # PG* variables from the caller's shell would redirect the tools to another cluster.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(
            [str(self.bin / tool), *args],
            cwd=self.root,
            env=env,
            user=self.os_user,
            group=self.os_user,
            extra_groups=[] if self.os_user else None,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def init(self) -> None:
        done = self.run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}{done.stderr}", pytrace=False)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(socket_dir=self.root))

    def start(self, attempts: int = 3) -> None:
        """Start and wait until it accepts connections (`pg_ctl -w` polls the server's own
        readiness report). A free port can be taken between choosing and binding it, so a
        failed bind is retried on another port."""
        log = self.root / "server.log"
        for _ in range(attempts):
            self.port = _free_port()
            log.unlink(missing_ok=True)
            done = self.run(
                "pg_ctl", "-D", str(self.data), "-l", str(log), "-o", f"-p {self.port}",
                "-w", "-t", "30", "start",
            )  # fmt: skip
            if done.returncode == 0:
                return
            text = log.read_text(errors="replace") if log.exists() else done.stderr
            if "could not bind" not in text:
                break
        pytest.fail(f"PostgreSQL did not start:\n{done.stderr}\n{text[-3000:]}", pytrace=False)

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _os_user() -> str | None:
    """Who runs the server: the current user, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root but the `postgres` OS user does not exist; {INSTALL}",
                    pytrace=False)  # fmt: skip
    return "postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir, os_user = _bin_dir(), _os_user()
    root = Path(tempfile.mkdtemp(prefix="sandbox-pg-"))
    if os_user:
        shutil.chown(root, os_user, os_user)
    server = PostgresServer(bin_dir, root, os_user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql://postgres@127.0.0.1:PORT/sandbox_test`, one database for the session."""
    return postgres_server.create_database("sandbox_test")


@pytest.fixture
def fresh_postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database for one test (for tests that create schemas or tables)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
