"""Running the `sandbox` command as a user would: this venv's console script, a clean environment
(no SANDBOX_* of the test run), English unless asked, a wide terminal so tables are not cut."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SANDBOX = Path(sys.executable).parent / "sandbox"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_") and k != "DATABASE_URL"}
    return env | {"COLUMNS": "250", "SANDBOX_LANG": "en"} | extra


def sandbox(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(SANDBOX), *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The whole of what a failed command printed: one line on stderr, nothing on stdout."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == "", done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]
