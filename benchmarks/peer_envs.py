"""One virtual environment per peer, under `benchmarks/envs/<peer>/` (git-ignored).

The peers cannot share our venv: smartnoise-sql pins an old OpenDP (0.14) and SQLAlchemy's
API it was written for, and `opendp[polars]` pins `polars==1.36.1`, while the sandbox runs
OpenDP 0.16 with a newer Polars. So each peer gets `python -m venv` + pip with the pins below,
created on first use and reused while the pins are unchanged (a `.installed` marker records
them). A peer whose installation fails is *blocked*: the pip error is kept in
`benchmarks/envs/<peer>.blocked.txt` and reported; no numbers are made up for it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENVS", "PEERS", "Peer", "ensure"]

HERE = Path(__file__).resolve().parent
ENVS = HERE / "envs"
SCRIPTS = HERE / "peers"


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    requirements: tuple[str, ...]
    script: str

    @property
    def directory(self) -> Path:
        return ENVS / self.name

    @property
    def python(self) -> Path:
        return self.directory / "bin" / "python"

    @property
    def script_path(self) -> Path:
        return SCRIPTS / self.script


PEERS = (
    Peer(
        "smartnoise",
        "SmartNoise SQL",
        ("smartnoise-sql==1.0.10", "pyarrow>=14"),  # pyarrow: pandas reads the Parquet
        "smartnoise_job.py",
    ),
    Peer("opendp", "OpenDP Polars", ("opendp[polars]==0.16.0",), "opendp_job.py"),
)


def _stamp(peer: Peer) -> str:
    return hashlib.sha256(json.dumps([sys.version, *peer.requirements]).encode()).hexdigest()


def ensure(peer: Peer, log=print) -> dict:
    """Create or reuse the peer's venv. Returns {"ok": bool, "python", "versions"|"error"}."""
    marker = peer.directory / ".installed"
    blocked = ENVS / f"{peer.name}.blocked.txt"
    if marker.exists() and marker.read_text().strip() == _stamp(peer) and peer.python.exists():
        return {"ok": True, "python": str(peer.python), "versions": _versions(peer), "created": False}
    log(f"  creating {peer.directory} ({', '.join(peer.requirements)}) ...")
    ENVS.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(peer.directory)],
        [str(peer.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *peer.requirements],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            error = f"$ {' '.join(step)}\n(exit {done.returncode})\n{done.stderr[-4000:]}"
            blocked.write_text(error)
            log(f"  [blocked] {peer.label}: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
            return {"ok": False, "error": error}
    marker.write_text(_stamp(peer))
    blocked.unlink(missing_ok=True)
    return {"ok": True, "python": str(peer.python), "versions": _versions(peer), "created": True}


def _versions(peer: Peer) -> dict[str, str]:
    """Installed versions of the packages that matter, for the report."""
    names = ["smartnoise-sql", "opendp", "polars", "pandas", "sqlalchemy", "numpy"]
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        f"for n in {names!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(peer.python), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


if __name__ == "__main__":
    for p in PEERS:
        print(p.name, ensure(p))
