"""`make notebook` in a real browser: Debian's Chromium (Playwright, never a browser download)
opens the one URL the command prints, sees JupyterLab with the quickstart open, runs the
quickstart up to its first query cell and sees the release table with its intervals.

The command is the Makefile's own (read with `make -n`), run against the live sandbox; no
request leaves loopback, and the stored notebook is not changed by the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.cli.support import SANDBOX, clean_env
from tests.support.live import REPO, LiveSandbox

CHROMIUM = Path("/usr/bin/chromium")
QUICKSTART = REPO / "notebooks" / "01_developer_quickstart.ipynb"
SHOTS = REPO / "tests" / "output" / "screenshots"


def make_notebook_command(live: LiveSandbox) -> list[str]:
    """What `make notebook` runs for this data directory and port (its last line under `make -n`)."""
    port = live.url.rsplit(":", 1)[1]
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")  # under `make test`, a nested make would print its directory
    printed = subprocess.run(["make", "--no-print-directory", "-n", "notebook", f"PORT={port}",
                              f"DATA={live.data_dir}"], cwd=REPO, capture_output=True, text=True, check=True,
                             env={k: v for k, v in os.environ.items() if k not in outer}).stdout.strip().splitlines()
    command = shlex.split(printed[-1])
    assert command[0] == ".venv/bin/sandbox" and command[1] == "notebook", printed
    return [str(SANDBOX), *command[1:]]


@pytest.fixture
def lab(live: LiveSandbox, tmp_path: Path) -> Iterator[str]:
    """`make notebook`'s command running; yields the URL it printed."""
    checkpoints = REPO / "notebooks" / ".ipynb_checkpoints"  # JupyterLab makes one when it opens a notebook
    had_checkpoints = checkpoints.exists()
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))  # keep notebooks/ clean
    env = clean_env(JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"))
    process = subprocess.Popen(make_notebook_command(live), cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        printed, deadline = "", time.monotonic() + 90
        while "token=" not in printed and time.monotonic() < deadline and process.poll() is None:
            printed += process.stdout.readline()
        urls = re.findall(r"http://127\.0\.0\.1:\d+/\S+", printed)
        assert len(urls) == 1, printed  # one URL to open
        assert "JupyterLab for Demo developer (developer)" in printed
        yield urls[0]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Ctrl-C: the launcher shuts JupyterLab and its kernels down
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        process.stdout.close()
        if not had_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)


def test_the_printed_url_opens_the_quickstart_in_jupyterlab_and_its_first_query_runs(live, lab) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make sysdeps` (apt-get install chromium).")
    stored = hashlib.sha256(QUICKSTART.read_bytes()).hexdigest()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/lab/tree/01_developer_quickstart\.ipynb\?token=\S+", lab)
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--disable-gpu", "--disable-background-networking", "--no-first-run",
            *(["--no-sandbox"] if os.geteuid() == 0 else [])])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(lab)

            expect(page).to_have_title(re.compile("JupyterLab|01_developer_quickstart"))
            expect(page.get_by_role("menuitem", name="Kernel", exact=True)).to_be_visible()  # JupyterLab's menu bar
            notebook = page.get_by_role("tabpanel", name="01_developer_quickstart.ipynb")
            expect(notebook.get_by_role("heading", level=1)).to_contain_text("Developer quickstart")
            expect(page.get_by_role("button", name=re.compile(r"Python 3 \(ipykernel\) \| Idle"))).to_be_visible()

            # The first query cell, with everything above it: Run > Run All Above Selected Cell, then the cell.
            query = notebook.locator(".jp-CodeCell", has_text="release = sb.query(sql, epsilon=0.5)")
            query.locator(".jp-InputPrompt").click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name=re.compile("^Run All Above Selected Cell")).click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name=re.compile(r"^Run Selected Cell(?! and)")).first.click()

            table = query.locator(".jp-OutputArea-output table.sandbox-table")
            expect(table).to_be_visible(timeout=120_000)
            expect(table.locator("thead th")).to_have_text(["district", "residents", "avg_income"])
            expect(table.locator("tbody tr")).to_have_count(6)
            # a value and its interval: ± when symmetric, [lower, upper] when not
            expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text(
                re.compile(r"^[\d,]+ (± [\d.,]+|\[[\d.,]+, [\d.,]+\])$"))
            expect(query.locator(".sandbox-footer")).to_contain_text("budget left ε")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "jupyterlab-quickstart.png"))
        finally:
            browser.close()
    strangers = {url for url in requested if not url.startswith(lab.split("/lab/")[0]) and not url.startswith("data:")}
    assert not strangers, f"JupyterLab fetched from outside loopback: {sorted(strangers)}"
    assert hashlib.sha256(QUICKSTART.read_bytes()).hexdigest() == stored, "the stored notebook was changed"
