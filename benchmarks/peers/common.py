"""The job protocol shared by the peer scripts (they run in the peers' own virtual environments,
so this module imports nothing from the sandbox and nothing outside the standard library).

The runner starts `python <peer>_job.py`, then writes one JSON job per line on its stdin and
reads one JSON answer per line from its stdout:

    job:    {"query": {...suite.Query.job()...}, "data": {"people": path, ...},
             "epsilon": 1.0, "delta": 1e-7, "reps": 5, "values": false}
    answer: {"ok": true, "seconds": [...], "values": [[row, ...] per release] | null,
             "load_seconds": {...}, "peak_rss_mib": 123.4, "info": {...}}
         or {"ok": false, "error": "...", "unsupported": true|false, ...}

`seconds` times each release inside the peer (from the query text/spec to the noisy rows in
Python), so the pipe's round trip is not counted; loading the data (for SmartNoise: pandas
and its SQLite copy) happens once per table and is reported as `load_seconds`. A row is a dict
of output column -> value, keys included. Anything the libraries print goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any


def peak_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def serve(run: Callable[[dict[str, Any]], tuple[list[float], list[Any] | None, dict[str, Any]]]) -> None:
    """Answer jobs until stdin closes. `run(job)` returns (seconds, values, info)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the protocol
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            seconds, values, info = run(job)
            answer = {"ok": True, "seconds": seconds, "values": values, "info": info}
        except Unsupported as exc:
            answer = {"ok": False, "unsupported": True, "error": str(exc)}
        except Exception as exc:  # reported, not fatal: the next job may work
            answer = {
                "ok": False,
                "unsupported": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-2000:],
            }
        answer["peak_rss_mib"] = peak_rss_mib()
        out.write(json.dumps(answer, default=_plain) + "\n")
        out.flush()


class Unsupported(Exception):
    """The peer cannot express this query (the message says why)."""


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)
