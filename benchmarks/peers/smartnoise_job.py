"""SmartNoise SQL as a benchmark peer (runs in benchmarks/envs/smartnoise/, see common.py).

The shared Parquet file is read into pandas once per table and handed to SmartNoise's pandas
reader, which copies it into an in-memory SQLite database (its documented way to query a
DataFrame); that one-off load is reported apart from the per-query times. Each release is
`PrivateReader.execute(sql)`.

Equal privacy: SmartNoise charges epsilon *per mechanism* (AVG = SUM + COUNT costs 2 epsilon;
private keys add a threshold on the count). For each query we read its total cost from
`get_privacy_cost` at epsilon 1 and scale the per-mechanism epsilon so the *total* equals the
query epsilon every other system gets (and the same for delta). Metadata per table:
`row_privacy: False` with `person_id` as `private_id`; `people`: `max_ids: 1`,
`sample_max_ids: False` (the data is one row per person, as our registration verifies);
`visits`: `max_ids: 4` with reservoir sampling; `censor_dims` is on for private keys only (it
has no public key sets: without censoring it releases the keys found in the data).
"""

from __future__ import annotations

import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from common import Unsupported, serve, timed  # noqa: E402
from snsql import Privacy  # noqa: E402
from snsql.sql.private_reader import PrivateReader  # noqa: E402
from snsql.sql.reader.base import SqlReader  # noqa: E402

COLUMNS = {
    "people": {
        "person_id": {"type": "int", "private_id": True},
        "grp": {"type": "string"},
        "region": {"type": "string"},
        "age": {"type": "int", "lower": 0, "upper": 100},
        "income": {"type": "float", "lower": 0.0, "upper": 200_000.0},
    },
    "visits": {
        "person_id": {"type": "int", "private_id": True},
        "grp": {"type": "string"},
        "cost": {"type": "float", "lower": 0.0, "upper": 2_000.0},
    },
}
MAX_IDS = {"people": 1, "visits": 4}

_readers: dict[str, Any] = {}


def metadata(table: str, censor_dims: bool) -> dict[str, Any]:
    return {  # collection -> schema -> table
        "benchmark": {
            "bench": {
                table: {
                    "row_privacy": False,
                    "max_ids": MAX_IDS[table],
                    "sample_max_ids": MAX_IDS[table] > 1,
                    "censor_dims": censor_dims,
                    "clamp_counts": False,
                    "clamp_columns": True,
                    "use_dpsu": False,
                    **COLUMNS[table],
                }
            }
        }
    }


def _reader(table: str, path: str) -> Any:
    """pandas -> SmartNoise's pandas reader (its SQLite copy), once per table."""
    if table not in _readers:
        frame = pd.read_parquet(path)
        _readers[table] = SqlReader.from_connection(
            frame, engine="pandas", metadata=metadata(table, False)
        )
    return _readers[table]


def private_reader(table: str, path: str, censor: bool, epsilon: float, delta: float, sql: str) -> tuple[Any, dict]:
    """A PrivateReader whose *total* cost for `sql` is (epsilon, delta)."""
    meta = metadata(table, censor)
    base = _reader(table, path)
    probe = PrivateReader(base, meta, privacy=Privacy(epsilon=1.0, delta=delta))
    unit_eps, unit_delta = probe.get_privacy_cost(sql)
    per_eps = epsilon / unit_eps
    per_delta = delta * delta / unit_delta if unit_delta > 0 else delta  # delta/unit_delta per 1
    reader = PrivateReader(base, meta, privacy=Privacy(epsilon=per_eps, delta=per_delta))
    total = reader.get_privacy_cost(sql)
    for _ in range(200):  # a few ulps over after the division: step down until within budget
        if total[0] <= epsilon * (1 + 1e-12) and total[1] <= delta * (1 + 1e-9):
            break
        per_eps *= 1 - 1e-9
        per_delta *= 1 - 1e-6
        reader = PrivateReader(base, meta, privacy=Privacy(epsilon=per_eps, delta=per_delta))
        total = reader.get_privacy_cost(sql)
    return reader, {"per_mechanism_epsilon": per_eps, "per_mechanism_delta": per_delta, "total": list(total)}


def run(job: dict[str, Any]) -> tuple[list[float], list[Any] | None, dict[str, Any]]:
    query = job["query"]
    sql = query["smartnoise"]
    if not sql:
        raise Unsupported("not expressible in SmartNoise SQL")
    table = query["table"]
    load, _ = timed(lambda: _reader(table, job["data"][table]))
    censor = query["keys"] == "private"
    try:
        reader, info = private_reader(table, job["data"][table], censor, job["epsilon"], job["delta"], sql)
    except Exception as exc:
        raise Unsupported(f"SmartNoise SQL rejects the query: {type(exc).__name__}: {exc}") from exc
    seconds, values = [], []
    for _ in range(job["reps"]):
        start = time.perf_counter()
        rows = reader.execute(sql)
        seconds.append(time.perf_counter() - start)
        if job.get("values"):
            header = rows[0]
            values.append([dict(zip(header, row, strict=True)) for row in rows[1:]])
    info |= {"load_seconds": load, "version": version("smartnoise-sql")}
    return seconds, values if job.get("values") else None, info


if __name__ == "__main__":
    serve(run)
