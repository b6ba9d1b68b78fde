"""The Jupyter launcher: it starts on loopback, its API answers, a kernel started in it can query
the sandbox (and sees no server paths), and it shuts down cleanly, kernels included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
from jupyter_client import BlockingKernelClient

from sandbox import notebook
from tests.support.live import REPO, free_port

KERNEL_CODE = """
import json, os
from sandbox.client import Sandbox
release = Sandbox().query("SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex", epsilon=0.2)
print("PROBE:" + json.dumps({"rows": len(release), "pid": os.getpid(), "cwd": os.getcwd(),
                             "env": dict(os.environ)}))
"""


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" in status.read_text()  # a zombie waiting for its reaper has stopped
    except FileNotFoundError:
        return True


def _run_in_kernel(server: notebook.NotebookServer, code: str) -> dict:
    kernel = server.api("POST", "api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    connection = server.runtime_dir / f"kernel-{kernel.json()['id']}.json"
    deadline = time.monotonic() + 30
    while not connection.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        printed: list[str] = []
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda m: printed.append(
            m["content"].get("text", "") if m["msg_type"] == "stream" else str(m["content"].get("evalue", ""))))
        assert reply["content"]["status"] == "ok", printed
    finally:
        client.stop_channels()
    return json.loads("".join(printed).split("PROBE:", 1)[1])


def test_launcher_serves_a_kernel_that_can_query_and_shuts_down(live, monkeypatch) -> None:
    # Server-side settings in the launcher's own environment must not reach the kernel.
    monkeypatch.setenv("SANDBOX_DATA_DIR", str(live.data_dir))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{live.data_dir}/sandbox.db")
    server = notebook.start(sandbox_url=live.url, token=live.tokens["developer"], agreement=live.agreement_id,
                            port=free_port(), quiet=True)
    try:
        assert urlparse(server.url).hostname == "127.0.0.1"
        assert server.api("GET", "api/status").status_code == 200
        assert httpx.get(server.url + "api/kernels", timeout=10).status_code == 403  # the token is required
        assert server.root == notebook.NOTEBOOKS
        contents = {item["name"] for item in server.api("GET", "api/contents").json()["content"]}
        assert "01_developer_quickstart.ipynb" in contents

        probe = _run_in_kernel(server, KERNEL_CODE)
        assert probe["rows"] == 2 and probe["cwd"] == str(notebook.NOTEBOOKS)
        env = probe["env"]
        assert {k for k in env if k.startswith("SANDBOX_")} == {"SANDBOX_URL", "SANDBOX_TOKEN", "SANDBOX_AGREEMENT"}
        assert (env["SANDBOX_URL"], env["SANDBOX_AGREEMENT"]) == (live.url, live.agreement_id)
        assert "DATABASE_URL" not in env and not any(str(live.data_dir) in value for value in env.values())
    finally:
        code = server.stop()
    assert code == 0 and server.process.poll() == 0
    assert _gone(probe["pid"])  # its kernel was shut down with it
    assert not server.runtime_dir.exists()


def test_sandbox_notebook_command(live) -> None:
    """`sandbox notebook` reads the demo tokens from the data directory and stops on Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    command = [sys.executable, "-m", "sandbox.cli", "notebook", "--data-dir", str(live.data_dir), "--url", live.url,
               "--port", str(free_port()), "--staff-tokens"]
    process = subprocess.Popen(command, cwd=REPO, env=env | {"COLUMNS": "200"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        printed = ""
        deadline = time.monotonic() + 60
        while "token=" not in printed and time.monotonic() < deadline and process.poll() is None:
            printed += process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)\S*\?token=(\S+)", printed)
        assert match, printed
        assert "JupyterLab for Demo developer (developer)" in printed
        base, token = match.groups()
        status = httpx.get(base + "api/status", headers={"Authorization": f"token {token}"}, timeout=10)
        assert status.status_code == 200
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
        try:
            httpx.get(base + "api/status", timeout=2)
            raise AssertionError("the Jupyter server is still answering")
        except httpx.TransportError:
            pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_sandbox_notebook_fails_early_without_a_sandbox(live, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "notebook", "--data-dir", str(live.data_dir), "--url",
         f"http://127.0.0.1:{free_port()}"], cwd=REPO, env=env | {"COLUMNS": "200"}, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 1 and "Cannot reach the sandbox" in done.stderr and len(done.stderr.splitlines()) == 1
    missing = subprocess.run([sys.executable, "-m", "sandbox.cli", "notebook", "--data-dir", str(tmp_path)], cwd=REPO,
                             env=env | {"COLUMNS": "200"}, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "demo-tokens.json does not exist" in missing.stderr
