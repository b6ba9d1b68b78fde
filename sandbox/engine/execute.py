"""The worker's tasks, one per backend: exact aggregates from the backend, then the shared noisy
release (noise.py). Exact aggregates never leave these functions; what they return is noisy."""

from __future__ import annotations

from typing import Any

import duckdb

from sandbox.compiler.plan import Plan
from sandbox.engine.duckdb_backend import DuckDBBackend
from sandbox.engine.noise import noisy_release, warm_up
from sandbox.engine.worker import post_connection

__all__ = ["run_plan", "run_spark_plan", "warm_up"]


def run_plan(
    con: duckdb.DuckDBPyConnection, plan: Plan, post: duckdb.DuckDBPyConnection | None = None
) -> dict[str, Any]:
    """DuckDB: the plan on `con` (its datasets attached, locked); the output SQL on `post`.
    Returns the release's table (values, interval ends, `__suppressed`) and its notes."""
    exact = DuckDBBackend(con).exact(plan)
    return noisy_release(plan, exact, post or post_connection())


def run_spark_plan(con: duckdb.DuckDBPyConnection, payload: tuple[Plan, Any]) -> dict[str, Any]:
    """Spark: this worker is the Spark Connect client; the exact aggregates arrive here and go
    no further. `con` is a locked database with nothing attached, for the output SQL."""
    from sandbox.engine.spark_backend import SparkBackend

    plan, job = payload
    exact = SparkBackend.for_worker(job.options).exact(plan, job)
    return noisy_release(plan, exact, con)
