"""Rendering the compiler's bounded statements for engines other than DuckDB, one module per
dialect. Each turns the generated statements into sqlglot trees, rewrites every construct whose
meaning differs between the engines into one with DuckDB's meaning (or refuses it), and
generates with sqlglot's `ErrorLevel.RAISE`, so nothing is dropped silently.

`check_backend` is the compiler's last step: one query runs on one backend (rule `one_backend`),
and a plan for a Spark-backed dataset must render for Spark (rule `spark_dialect`), so both
refusals happen at compile time, before anything is charged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.compiler.dialects.spark import SparkStatements, check_spark, render_spark
from sandbox.errors import SQLRejected

if TYPE_CHECKING:
    from sandbox.catalog import Catalog
    from sandbox.compiler.plan import Plan

__all__ = ["SparkStatements", "backend_of", "check_backend", "check_spark", "render_spark"]


def backend_of(plan: Plan, catalog: Catalog) -> str:
    """The backend that serves every dataset the plan reads (each dataset's manifest says which);
    a plan over datasets of two backends is refused: one query runs on one engine."""
    names = {catalog.get(name).backend for name in plan.attach}
    if len(names) > 1:
        raise SQLRejected(
            "This query",
            f"it reads datasets served by different backends ({', '.join(sorted(names))}), and one query "
            "runs on one engine",
            "Query the datasets separately, or ask the operators to register them on the same backend.",
            rule="one_backend",
        )
    return names.pop() if names else "duckdb"


def check_backend(plan: Plan, catalog: Catalog) -> None:
    """Refuse at compile time what the plan's backend cannot run with DuckDB's meaning."""
    if backend_of(plan, catalog) == "spark":
        check_spark(plan, catalog)
