"""`make demo` and `make stop` as a new user meets them: a short banner whose lines can be pasted
as they are, `/` leading to the console, one server per data directory, `make stop` stopping
exactly that server, and a restarted demo whose spent agreement is topped up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.support import SANDBOX, clean_env, one_line_error, sandbox
from tests.support.live import REPO, free_port

SCALE = "2000"


class Demo:
    """`sandbox demo` in its own process group, as `make demo` starts it."""

    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port, self.url = data, port, f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [str(SANDBOX), "demo", "--data-dir", str(data), "--port", str(port), "--scale", SCALE], cwd=REPO,
            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.banner = self._read_banner()

    def _read_banner(self) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline()
            lines.append(line.rstrip("\n"))
            if lines[-1].startswith("  ") and len(lines) > 1 and lines[-2] == "and as the operator:":
                start = next(i for i, text in enumerate(lines) if "is serving on" in text)
                return lines[start:]
        raise AssertionError("no banner:\n" + "\n".join(lines))

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def demos(tmp_path: Path) -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        demo.kill()


def make_stop(data: Path) -> subprocess.CompletedProcess:
    """The Makefile's target itself, with this test run's virtual environment."""
    env = {k: v for k, v in clean_env().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s", "--no-print-directory", "stop", f"DATA={data}",
                           f"VENV={Path(sys.executable).parent.parent}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_banner_stop_restart_and_top_up(tmp_path: Path, demos: list[Demo]) -> None:
    data = tmp_path / "var"
    demo = Demo(data, free_port())
    demos.append(demo)
    tokens = json.loads((data / "demo-tokens.json").read_text())
    text = "\n".join(demo.banner)

    # Short, and every command is one line that works when pasted into a shell in the repository.
    assert len(demo.banner) <= 16, text
    assert f"{demo.url}/console" in text and f"make notebook PORT={demo.port} DATA={data}" in text
    assert f"make stop DATA={data}" in text and "DATA_DIR" not in text
    export = next(line.strip() for line in demo.banner if line.strip().startswith("export SANDBOX_URL="))
    query = next(line.strip() for line in demo.banner if " query " in line)
    assert query.startswith(f"{Path(sys.executable).parent.relative_to(REPO)}/sandbox query ")
    assert f"SANDBOX_AGREEMENT={tokens['agreement_id']}" in export and tokens["developer"] in export
    pasted = subprocess.run(["bash", "-c", f"{export}\n{query}"], cwd=REPO, env=clean_env(), capture_output=True,
                            text=True, timeout=60)
    assert pasted.returncode == 0 and "Siming" in pasted.stdout, pasted.stderr
    assert " ± " in pasted.stdout or " [" in pasted.stdout  # ± when symmetric, [lower, upper] when not

    # Each registration is audited with its certificate and the ε its DP metadata spent.
    auditor = {"Authorization": f"Bearer {tokens['auditor']}"}

    def registrations(url: str) -> list[dict]:
        return httpx.get(url + "/audit", params={"action": "dataset.registered"}, headers=auditor,
                         timeout=30).json()["events"]

    first = {e["dataset"]: e["details"] for e in registrations(demo.url)}
    assert {"residents", "medical_visits", "district_reference"} <= set(first), first
    assert first["residents"]["metadata_epsilon"] > 0 and first["district_reference"]["metadata_epsilon"] == 0
    assert first["residents"]["version"] == 1 and len(first["residents"]["snapshot_sha256"]) == 64

    # / leads to the console; a second demo on the same data directory is refused in one line.
    home = httpx.get(demo.url + "/", follow_redirects=False, timeout=10)
    assert home.status_code in (302, 307) and home.headers["location"] == "/console"
    again = sandbox("demo", "--data-dir", str(data), "--port", str(free_port()), "--scale", SCALE, cwd=REPO)
    assert f"already serving {data} (pid {demo.process.pid}" in one_line_error(again)

    # The operator revokes the demo agreement; make stop stops exactly this server, not another one.
    revoked = sandbox("agreements", "revoke", tokens["agreement_id"], "--reason", "spent", "--url", demo.url,
                      "--token", tokens["operator"], cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    other = subprocess.Popen([str(SANDBOX), "serve", "--data-dir", str(tmp_path / "other"), "--policies",
                              str(tmp_path / "no-policies"), "--port", str(free_port())], cwd=REPO, env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    (tmp_path / "no-policies").mkdir()
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "other" / "sandbox.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped = make_stop(data)
        assert stopped.returncode == 0 and f"Stopped the sandbox (pid {demo.process.pid})" in stopped.stdout, stopped
        assert demo.process.wait(30) == 0 and not (data / "sandbox.pid").exists()
        assert "no sandbox is running" in make_stop(data).stdout.lower()
        assert other.poll() is None, "make stop stopped a sandbox of another data directory"
        assert f"(pid {other.pid})" in make_stop(tmp_path / "other").stdout and other.wait(30) == 0
    finally:
        if other.poll() is None:
            os.killpg(other.pid, signal.SIGKILL)
            other.wait()

    # Restarted, it tops the agreement up and says so; the tokens file names the new agreement.
    restarted = Demo(data, free_port())
    demos.append(restarted)
    note = restarted.banner[1]
    assert note.startswith(f"The demo agreement {tokens['agreement_id'][:8]} was revoked with ε 4.5 left; a new one")
    renewed = json.loads((data / "demo-tokens.json").read_text())
    assert renewed["agreement_id"] != tokens["agreement_id"] and renewed["developer"] == tokens["developer"]
    assert renewed["agreement_id"] in "\n".join(restarted.banner)
    # The top-up was written on the server machine before the server started: into the server's
    # journal too, so the log verifies (before, every later verify failed: events not in the journal).
    verified = httpx.get(restarted.url + "/audit/verify", headers={"Authorization": f"Bearer {tokens['auditor']}"},
                         timeout=60).json()
    assert verified["ok"] is True, verified
    assert len(registrations(restarted.url)) == len(first), "unchanged data: re-checked, not registered again"
    assert "Stopped the sandbox" in make_stop(data).stdout and restarted.process.wait(30) == 0
