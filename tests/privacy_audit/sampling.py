"""Many releases of one compiled plan, through the worker's own execution code.

Each release is `sandbox.engine.execute.run_plan` on a locked-down DuckDB connection, exactly
what an engine worker runs for a job: the generated bounded SQL over the registered files, then
OpenDP noise, disclosure control and the output SQL. Only the process around it differs: a pool
of plain processes (one per core, spawned, so no DuckDB or OpenDP state is forked) each reusing
one connection for a chunk of releases, because a worker round trip per release would make a
statistical audit take hours.

What is audited is the randomness, and all of it is in the noise: the exact aggregates of fixed,
registered data are deterministic (rows are chosen by a keyed hash at registration, and the
sums are integer sums). So the bounded SQL runs for real on the first releases of each chunk,
which must agree row for row, and its rows are replayed to `run_plan` afterwards: the
window-heavy bounding SQL of a private-key GROUP BY costs ~10 ms a release, the noise ~1 ms.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

import pyarrow as pa

from sandbox.compiler.plan import Plan

__all__ = ["Sampler", "group_features", "sampler", "single_value"]

Extract = Callable[[pa.Table], dict[str, float]]


REAL_RUNS = 3  # releases per chunk whose exact aggregates come from DuckDB, and must agree


class _Replayed:
    def __init__(self, description: Any, rows: list[tuple]) -> None:
        self.description, self._rows = description, rows

    def fetchall(self) -> list[tuple]:
        return list(self._rows)


class _Replay:
    """A locked-down connection that answers the plan's exact-aggregate SQL from its first runs."""

    def __init__(self, con: Any, plan: Plan) -> None:
        self._con, self._exact = con, {plan.aggregate_sql, *plan.histogram_sql.values()}
        self._seen: dict[str, tuple[Any, list[tuple]]] = {}
        self._runs: dict[str, int] = {}

    def execute(self, sql: str, *args: Any) -> Any:
        if sql not in self._exact:
            return self._con.execute(sql, *args)
        if self._runs.get(sql, 0) < REAL_RUNS:
            cursor = self._con.execute(sql, *args)
            answer = (cursor.description, sorted(cursor.fetchall(), key=repr))
            if sql in self._seen and answer[1] != self._seen[sql][1]:
                raise AssertionError(f"exact aggregates differ between runs of {sql}")
            self._seen[sql], self._runs[sql] = answer, self._runs.get(sql, 0) + 1
        return _Replayed(*self._seen[sql])

    def __getattr__(self, name: str) -> Any:  # register, sql, unregister, close: the real thing
        return getattr(self._con, name)


def _draw(plan: Plan, n: int, extract: Extract) -> list[dict[str, float]]:
    from sandbox.engine.execute import run_plan
    from sandbox.engine.lockdown import open_locked_connection
    from sandbox.engine.worker import WorkerLimits

    con = _Replay(open_locked_connection(plan.attach, WorkerLimits()), plan)
    try:
        return [extract(run_plan(con, plan)["table"]) for _ in range(n)]
    finally:
        con.close()


class Sampler:
    def __init__(self, pool: ProcessPoolExecutor, workers: int) -> None:
        self.pool, self.workers = pool, workers

    def submit(self, plan: Plan, n: int, extract: Extract) -> Callable[[], list[dict[str, float]]]:
        """Start n releases (split over the pool); the returned function waits for them."""
        chunk = math.ceil(n / self.workers)
        futures: list[Future] = [
            self.pool.submit(_draw, plan, min(chunk, n - start), extract) for start in range(0, n, chunk)
        ]
        return lambda: [row for f in futures for row in f.result()]

    def releases(self, plan: Plan, n: int, extract: Extract) -> list[dict[str, float]]:
        return self.submit(plan, n, extract)()


@contextmanager
def sampler() -> Iterator[Sampler]:
    workers = max(1, min(os.cpu_count() or 1, 8))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield Sampler(pool, workers)


# -- what an attacker looks at in a release (module level: they cross into the pool) --------


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def single_value(table: pa.Table, column: int | str = 0) -> dict[str, float]:
    """A one-row release: the value of its first (or the named) column."""
    return {"value": _number(table.column(column)[0].as_py())}


def group_features(table: pa.Table, *, key: str, rare: str, common: str) -> dict[str, float]:
    """A private-key GROUP BY release: is the rare key listed at all, and the common key's count
    (-inf when the common key was not released)."""
    keys = table.column(key).to_pylist()
    counts = table.column(1).to_pylist()
    common_count = next((c for k, c in zip(keys, counts, strict=True) if k == common), None)
    return {
        "rare_listed": float(rare in keys),
        "common_count": -math.inf if common_count is None else float(common_count),
    }
