"""A real sandbox server in a subprocess: uvicorn on 127.0.0.1, a free port, its own process group.

In-process clients skip the parts that break in production: the socket, uvicorn's lifespan
handling, a separate process with its own environment, worker processes spawned from a server.
End-to-end tests use this instead:

    with running_server(data_dir, database_url="sqlite:///.../sandbox.db") as server:
        httpx.get(server.url + "/health")
        server.kill()      # SIGKILL the server and its engine workers, no shutdown (crash tests)
        server.start()     # the same data dir and database again, on a new port

The data directory must already hold a registered catalog (`Catalog(data_dir).register_directory`);
the server does not register anything. The server and its spawned engine workers form one process
group, so `kill` and `stop` reach every process the server started and nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["Server", "ServerError", "running_server"]

REPO = Path(__file__).resolve().parents[2]
# Settings read from the environment; the caller's own values must not leak into the server.
_OWN_ENV = ("DATABASE_URL",)
_OWN_PREFIX = "SANDBOX_"


class ServerError(RuntimeError):
    """The server did not come up (its log is in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One sandbox server process; `start` may be called again after `stop` or `kill`."""

    def __init__(
        self, data_dir: str | Path, database_url: str | None = None, *, workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.workers = workers
        self.extra_env = dict(env or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        handle, name = tempfile.mkstemp(prefix="sandbox-server-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr, over all its starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _OWN_ENV and not k.startswith(_OWN_PREFIX)}
        env.update(SANDBOX_DATA_DIR=str(self.data_dir), SANDBOX_WORKERS=str(self.workers), PYTHONUNBUFFERED="1")
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Start and wait until GET /health answers 200 (uvicorn serves only after the app's
        start-up, so the job service and its engine workers are ready then). A free port can be
        taken between choosing and binding it; a failed bind is retried on another port."""
        if self.running:
            raise ServerError(f"the server is already running (pid {self.pid})")
        for _ in range(attempts):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                log.write(f"--- starting on port {self.port}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "sandbox.api:create_app", "--factory",
                     "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                    cwd=REPO, env=self.environment(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            if self._wait_healthy(timeout):
                return
            text = self.log()
            self.kill()
            if "address already in use" not in text.lower():
                break
        raise ServerError(f"the sandbox server did not start; its log:\n{self.log()[-5000:]}")

    def _wait_healthy(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful: SIGTERM, so uvicorn runs the app's shutdown (jobs finish, workers stop).
        Falls back to `kill` after `timeout`. Returns the server's exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()  # anything the server left behind
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the server and every process it started (its engine workers): a crash, with
        no shutdown code run at all."""
        if self.process is None:
            return
        self._kill_group()
        self.process.wait(10)

    def _kill_group(self) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group is the server's own session
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


@contextmanager
def running_server(
    data_dir: str | Path, database_url: str | None = None, *, workers: int = 1, env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[Server]:
    """A started `Server`, stopped (gracefully, then by force) and its log removed on exit."""
    server = Server(data_dir, database_url, workers=workers, env=env)
    try:
        server.start(timeout)
        yield server
    finally:
        server.close()
