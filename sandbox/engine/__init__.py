"""The library API: `Engine(catalog).run(sql, epsilon=...) -> Release`.

The engine compiles in the calling process (no data) and executes in an isolated worker
process, where exact aggregates are computed and noised. The backend surface is narrow — a plan
in, a noisy Arrow table out — so a Spark backend can run the same bounded SQL later.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sandbox.compiler import Plan, compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.release import Release
from sandbox.engine.worker import WorkerLimits, WorkerPool

if TYPE_CHECKING:
    from sandbox.catalog import Catalog

__all__ = ["Engine", "Release", "WorkerLimits"]


class Engine:
    def __init__(self, catalog: Catalog, *, workers: int = 2, limits: WorkerLimits | None = None) -> None:
        self.catalog = catalog
        self.limits = limits or WorkerLimits()
        self.pool = WorkerPool(workers, self.limits, preload=("sandbox.engine.execute",))

    def explain(self, sql: str, *, epsilon: float, delta: float | None = None) -> Plan:
        """The plan, the charge and per-column accuracy, without touching data."""
        return compile_query(sql, self.catalog, epsilon=epsilon, delta=delta, memory_mb=self.limits.memory_mb)

    def run(self, sql: str, *, epsilon: float, delta: float | None = None) -> Release:
        return self.execute(self.explain(sql, epsilon=epsilon, delta=delta))

    def execute(self, plan: Plan) -> Release:
        """Run an already compiled plan (the service compiles, reserves budget, then executes)."""
        start = time.perf_counter()
        output = self.pool.run(run_plan, plan, plan.attach)
        return Release.from_worker(plan, output["table"], time.perf_counter() - start, tuple(output.get("notes", ())))

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
