"""`sandbox notebook` (`make notebook`): JupyterLab for licensed developers, configured for a
running sandbox.

JupyterLab listens on loopback only, serves `notebooks/`, and starts kernels whose environment
holds exactly what the client needs — SANDBOX_URL, SANDBOX_TOKEN and SANDBOX_AGREEMENT (and the
language, SANDBOX_LANG) — and nothing that points at the sandbox's data directory or metadata
database: a notebook reaches the data only through the API. The one URL it prints opens the
quickstart notebook; JupyterLab's own update and news checks, which would call the internet,
are off.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

__all__ = ["NOTEBOOKS", "QUICKSTART", "NotebookServer", "check_sandbox", "demo_tokens", "kernel_environment", "start",
           "wait"]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
QUICKSTART = "01_developer_quickstart.ipynb"
HOST = "127.0.0.1"
# Server-side settings a kernel must not inherit: they name the data directory and the database.
_SERVER_ONLY = ("DATABASE_URL",)


def kernel_environment(
    sandbox_url: str, token: str, *, agreement: str | None = None, extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The Jupyter server's (and so every kernel's) environment: the caller's, without any
    SANDBOX_* server setting or database URL, plus the client's URL, token and agreement."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if (not k.startswith("SANDBOX_") or k == "SANDBOX_LANG") and k not in _SERVER_ONLY}
    env |= {"SANDBOX_URL": sandbox_url, "SANDBOX_TOKEN": token, "JUPYTER_PLATFORM_DIRS": "1"}
    if agreement:
        env["SANDBOX_AGREEMENT"] = agreement
    env |= dict(extra or {})
    return env


def demo_tokens(data_dir: Path) -> dict[str, str]:
    """The demo accounts that `sandbox demo` wrote (DATA_DIR/demo-tokens.json)."""
    path = Path(data_dir) / "demo-tokens.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: start the demo first (`make demo`), or pass --token.")
    return json.loads(path.read_text())


@dataclass
class NotebookServer:
    """A running Jupyter server; `stop()` shuts it (and its kernels) down."""

    process: subprocess.Popen = field(repr=False)
    url: str  # base URL, ending in "/"
    token: str = field(repr=False)
    root: Path
    runtime_dir: Path

    @property
    def browser_url(self) -> str:
        """JupyterLab with the file browser on `root`."""
        return f"{self.url}lab?token={self.token}"

    def browser_url_for(self, notebook: str) -> str:
        """JupyterLab with `notebook` (a path under `root`) open."""
        return f"{self.url}lab/tree/{quote(notebook)}?token={self.token}"

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.url + path.lstrip("/"), headers={"Authorization": f"token {self.token}"},
                             timeout=30, **kwargs)

    def stop(self, timeout: float = 20.0) -> int:
        """Ask the server to shut down (it stops its kernels), then make sure it has."""
        if self.process.poll() is None:
            try:
                self.api("POST", "api/shutdown")
            except httpx.HTTPError:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> NotebookServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    *, sandbox_url: str, token: str, agreement: str | None = None, extra_env: Mapping[str, str] | None = None,
    root: Path = NOTEBOOKS, port: int = 8888, startup_timeout: float = 60.0, quiet: bool = False,
) -> NotebookServer:
    """Start JupyterLab on loopback with `root` as its root; returns once its API answers."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="sandbox-jupyter-"))
    env = kernel_environment(sandbox_url, token, agreement=agreement, extra=extra_env)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(_lab_config(runtime_dir)),
                                                               env.get("JUPYTER_CONFIG_PATH")]))
    jupyter_token = secrets.token_urlsafe(24)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=20", f"--ServerApp.root_dir={Path(root).resolve()}",
        f"--IdentityProvider.token={jupyter_token}",
        # No calls to the internet: no update check, no news feed (and no question about it).
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
        # Workspaces (open tabs) per run, so the printed URL always opens the quickstart alone.
        f"--LabApp.workspaces_dir={runtime_dir / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers often run as root; the server is on loopback only
    log = runtime_dir / "jupyter.log"
    with log.open("ab") as out:
        # Its own session: a terminal's Ctrl-C reaches only the launcher, which shuts Jupyter down
        # through its API (Jupyter itself would stop to ask for confirmation on stdin).
        process = subprocess.Popen(command, env=env, cwd=root, stdin=subprocess.DEVNULL, start_new_session=True,
                                   stdout=out if quiet else None, stderr=out if quiet else None)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            shutil.rmtree(runtime_dir, ignore_errors=True)
            raise RuntimeError(f"the Jupyter server exited with code {process.returncode}:\n{tail}")
        info = runtime_dir / f"jpserver-{process.pid}.json"
        if info.exists():
            try:
                url = json.loads(info.read_text())["url"]
            except (ValueError, KeyError):
                url = None  # still being written
            if url:
                server = NotebookServer(process, url if url.endswith("/") else url + "/", jupyter_token,
                                        Path(root).resolve(), runtime_dir)
                try:
                    if server.api("GET", "api/status").status_code == 200:
                        return server
                except httpx.TransportError:
                    pass
        time.sleep(0.2)
    process.kill()
    process.wait(5)
    tail = log.read_text(errors="replace")[-3000:]
    shutil.rmtree(runtime_dir, ignore_errors=True)
    raise RuntimeError(f"the Jupyter server did not answer within {startup_timeout:.0f} s:\n{tail}")


def _lab_config(runtime_dir: Path) -> Path:
    """Extra Jupyter configuration for this run: JupyterLab's announcements plugin (which asks
    whether to fetch news from the internet) is disabled in its page config."""
    config = runtime_dir / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    return config


def wait(server: NotebookServer) -> int:
    """Serve until Ctrl-C (SIGINT) or SIGTERM, then shut the server down with its kernels."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit handlers: a process started in the background may have inherited SIGINT ignored.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        code = server.stop()
    return code


def check_sandbox(url: str, token: str) -> str:
    """Fail early, with what to do, if the sandbox is not running or the token is wrong."""
    from sandbox.client import Sandbox

    with Sandbox(url, token) as sandbox:
        me = sandbox.me()
    return f"{me['name']} ({me['role']})"
