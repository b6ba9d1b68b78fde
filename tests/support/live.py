"""A real sandbox for client and notebook tests: a small demo city, the demo accounts, and
`uvicorn` serving it on a free loopback port in a subprocess (the way `sandbox serve` does).

The `live` fixture (import it into a conftest) builds and starts it once per test session,
whichever test directory asks first, and stops it at the end of the session; `atexit` is a
safety net for an interrupted run.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sandbox.catalog import Catalog
from sandbox.demo import build_demo

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
SCALE = 2_000


@dataclass
class LiveSandbox:
    url: str
    data_dir: Path
    tokens: dict  # admin, operator, auditor, developer, agreement_id; stewards: dataset -> token
    process: subprocess.Popen = field(repr=False)
    log: Path = field(repr=False)

    @property
    def agreement_id(self) -> str:
        return self.tokens["agreement_id"]

    def client_env(self) -> dict[str, str]:
        """What the notebooks read: URL, the developer's token and agreement, the staff tokens
        (the data stewards' as JSON: dataset -> token)."""
        return {"SANDBOX_URL": self.url, "SANDBOX_TOKEN": self.tokens["developer"],
                "SANDBOX_AGREEMENT": self.agreement_id, "SANDBOX_OPERATOR_TOKEN": self.tokens["operator"],
                "SANDBOX_AUDITOR_TOKEN": self.tokens["auditor"],
                "SANDBOX_STEWARD_TOKENS": json.dumps(self.tokens["stewards"])}

    def approve_parts(self, agreement_id: str) -> None:
        """Every data steward of the demo approves their datasets' pending parts of the agreement
        (the operator's approval alone leaves a request over the demo city's data awaiting them)."""
        from sandbox.client import Sandbox

        for token in set(self.tokens["stewards"].values()):
            with Sandbox(self.url, token) as steward:
                for part in steward.parts(status="pending"):
                    if part["agreement_id"] == agreement_id:
                        steward.approve_part(agreement_id, part["dataset"], reason="tests")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(data_dir: Path) -> dict[str, str]:
    """Demo city at a small scale, every policy registered, the demo accounts and agreement."""
    from sandbox.cli.demo import demo_accounts as _demo_accounts

    build_demo(data_dir / "demo", scale=SCALE)
    Catalog(data_dir).register_directory(POLICIES)
    return _demo_accounts(data_dir)


def start(data_dir: Path, tokens: dict[str, str], *, workers: int = 2) -> LiveSandbox:
    port = free_port()
    log = data_dir / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_") and k != "DATABASE_URL"}
    env |= {"SANDBOX_DATA_DIR": str(data_dir), "SANDBOX_WORKERS": str(workers)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "sandbox.api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = LiveSandbox(f"http://127.0.0.1:{port}", data_dir, tokens, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"sandbox server did not answer within 60 s:\n{log.read_text()[-3000:]}")


_RUNNING: dict[str, LiveSandbox] = {}


def live_sandbox(tmp_path_factory) -> LiveSandbox:
    """One shared server per test session."""
    if "shared" not in _RUNNING:
        data_dir = tmp_path_factory.mktemp("live-sandbox")
        _RUNNING["shared"] = start(data_dir, prepare(data_dir))
    return _RUNNING["shared"]


def stop_all() -> None:
    while _RUNNING:
        _RUNNING.popitem()[1].stop()


atexit.register(stop_all)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory):
    """The shared live sandbox (see the module docstring)."""
    yield live_sandbox(tmp_path_factory)
    stop_all()


def read_tokens(data_dir: Path) -> dict[str, str]:
    return json.loads((data_dir / "demo-tokens.json").read_text())
