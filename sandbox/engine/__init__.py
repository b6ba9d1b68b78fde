"""The library API: `Engine(catalog).run(sql, epsilon=...) -> Release`.

The engine compiles in the calling process (no data) and executes in an isolated worker
process, where a backend computes the exact aggregates and the shared code noises them
(backend.py). Which backend runs a plan is the datasets': each dataset is registered on, and
served by, DuckDB on this machine or Spark through Spark Connect (settings.py, `backend`,
`dataset_backends`, `spark_remote`). Adding a backend changes neither the compiler nor the service.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sandbox.compiler import Plan, compile_query
from sandbox.compiler.dialects import backend_of
from sandbox.engine.backend import BackendChoice, SparkOptions
from sandbox.engine.execute import from_worker, release_plan, release_spark_plan
from sandbox.engine.release import Release
from sandbox.engine.worker import WorkerLimits, WorkerPool
from sandbox.errors import QueryFailed, SQLRejected

if TYPE_CHECKING:
    from sandbox.catalog import Catalog
    from sandbox.compiler.dialects.spark import SparkStatements

__all__ = ["BackendChoice", "Engine", "Release", "SparkOptions", "WorkerLimits"]


class Engine:
    def __init__(
        self,
        catalog: Catalog,
        *,
        workers: int = 2,
        limits: WorkerLimits | None = None,
        backends: BackendChoice | None = None,
    ) -> None:
        self.catalog = catalog
        self.limits = limits or WorkerLimits()
        self.backends = backends or catalog.backends
        preload = ["sandbox.engine.execute"]
        if self.backends.spark is not None:
            preload.append("sandbox.engine.spark_backend")
        self.pool = WorkerPool(workers, self.limits, preload=preload)

    def explain(self, sql: str, *, epsilon: float, delta: float | None = None) -> Plan:
        """The plan, the charge and per-column accuracy, without touching data. A query over
        Spark-backed datasets that Spark cannot run with DuckDB's meaning is refused here (by
        the compiler: compiler/dialects)."""
        return compile_query(sql, self.catalog, epsilon=epsilon, delta=delta, memory_mb=self.limits.memory_mb)

    def run(self, sql: str, *, epsilon: float, delta: float | None = None) -> Release:
        return self.execute(self.explain(sql, epsilon=epsilon, delta=delta))

    def execute(self, plan: Plan) -> Release:
        """Run an already compiled plan (the service compiles, reserves budget, then executes)."""
        start = time.perf_counter()
        if self.backend_of(plan) == "spark":
            output = self._execute_spark(plan)
        else:
            output = self.pool.run(release_plan, plan, plan.attach, warm=True)
        table, notes = from_worker(output), tuple(output.get("notes", ()))
        return Release.from_worker(plan, table, time.perf_counter() - start, notes)

    def backend_of(self, plan: Plan) -> str:
        """The backend of the plan's datasets (a query reads datasets of one backend only)."""
        return backend_of(plan, self.catalog)

    def spark_statements(self, plan: Plan) -> SparkStatements:
        from sandbox.compiler.dialects.spark import dataset_schema, dataset_version, render_spark

        options = self._spark_options()
        datasets = {name: self.catalog.get(name) for name in plan.attach}
        return render_spark(
            plan,
            {name: dataset_schema(d) for name, d in datasets.items()},
            {name: options.artefact_url(str(d.artefact_path)) for name, d in datasets.items()},
            {name: dataset_version(d) for name, d in datasets.items()},
        )

    def _execute_spark(self, plan: Plan) -> dict:
        from sandbox.engine.spark_backend import SparkJob

        try:
            statements = self.spark_statements(plan)
        except SQLRejected as refusal:  # a plan compiled for another catalog: nothing read, nothing charged
            raise QueryFailed(refusal.message, data_touched=False) from None
        job = SparkJob(self._spark_options(), statements)
        return self.pool.run(release_spark_plan, (plan, job), {}, warm=True)

    def _spark_options(self) -> SparkOptions:
        if self.backends.spark is None:
            raise QueryFailed(
                "This dataset is served by Spark, but no Spark Connect server is configured. Nothing was read "
                "and nothing is charged. Ask the operators to set SANDBOX_SPARK_REMOTE=sc://host:15002.",
                data_touched=False,
            )
        return self.backends.spark

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
