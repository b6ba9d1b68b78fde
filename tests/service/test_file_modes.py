"""What a server writes to its data directory is its OS user's alone.

The metadata database holds every developer's SQL, every release and the audit log; next to it
are the signing key, the console key, the bounding secret and the audit records. A real server
started on a data directory that does not exist yet, under the usual umask 022, must create the
directory 0700 and every file 0600 (the SQLite WAL and shared-memory files included), and an
existing directory open to others is closed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from sandbox import accounts
from sandbox.audit import Journal
from sandbox.store import Store
from tests.support.server import Server


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "var"  # does not exist yet: the server creates it
    database = str(data / "sandbox.db")
    previous = os.umask(0o022)
    server = Server(data, database, workers=1)
    try:
        server.start()
        assert httpx.get(server.url + "/health").status_code == 200
        assert httpx.get(server.url + "/console/signin").status_code == 200  # makes the console key
        store = Store(database, journal=Journal.of(data, database))
        admin, token = accounts.create_user(store, "Admin", "admin")
        store.close()
        made = httpx.post(server.url + "/users", json={"name": "Audit office", "role": "auditor"},
                          headers={"Authorization": f"Bearer {token}"})
        assert made.status_code == 201, made.text
        files = {p.name: mode(p) for p in data.iterdir() if p.is_file()}
        assert {"sandbox.db", "sandbox.db-wal", "sandbox.db-shm"} <= set(files), files
    finally:
        server.close()  # graceful: the checkpoint at shutdown writes the witness file
        os.umask(previous)
    assert mode(data) == 0o700
    everything = [p for p in data.rglob("*")]
    assert {p.relative_to(data).as_posix() for p in everything} >= {
        "sandbox.db", "secret.key", "audit-signing.key", "console.key", "audit-journal", "audit-checkpoints"}
    # (The catalog's own datasets/ directory keeps the modes the catalog gives it: the 0700 data
    # directory around it is what closes it.)
    opened = {p.relative_to(data).as_posix(): oct(mode(p)) for p in everything
              if mode(p) & 0o077 and not p.relative_to(data).as_posix().startswith("datasets")}
    assert opened == {}, "readable by others"


def test_an_existing_open_directory_is_closed(tmp_path: Path) -> None:
    from sandbox.api.deps import Services
    from sandbox.settings import Settings

    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "sandbox.db").touch(mode=0o644)
    os.chmod(data / "sandbox.db", 0o644)
    services = Services(Settings(data_dir=data))
    services.close()
    assert mode(data) == 0o700 and mode(data / "sandbox.db") == 0o600


@pytest.mark.parametrize("attempt", range(5))
def test_servers_starting_together_agree_on_one_catalog_secret(tmp_path: Path, attempt: int) -> None:
    """The bounding secret is made once: before, a second creator crashed on the first one's file,
    or read it half-written and ranked rows with an empty secret."""
    import threading

    from sandbox.catalog import Catalog

    openers = 16
    barrier = threading.Barrier(openers)
    secrets: list[bytes] = []
    errors: list[BaseException] = []

    def open_catalog() -> None:
        barrier.wait()
        try:
            secrets.append(Catalog(tmp_path / "var")._secret)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_catalog) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(secrets) == openers
    assert len(set(secrets)) == 1 and len(secrets[0]) == 32
    assert mode(tmp_path / "var" / "secret.key") == 0o600
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["datasets", "secret.key"], "no temporary files"
