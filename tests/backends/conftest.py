"""A real Spark Connect server for the whole session (tests/support/spark.py), and helpers that
put the two backends side by side."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.catalog import Catalog
from sandbox.compiler.dialects.spark import dataset_schema, dataset_version, render_spark
from sandbox.compiler.plan import Plan
from sandbox.engine.backend import Exact, SparkOptions
from sandbox.engine.duckdb_backend import DuckDBBackend
from sandbox.engine.spark_backend import SparkBackend, SparkJob
from sandbox.engine.spark_session import connect
from tests.support.spark import SparkServer, spark_connect_server


@pytest.fixture(scope="session")
def spark_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkServer]:
    with spark_connect_server(tmp_path_factory.mktemp("spark")) as server:
        yield server


@pytest.fixture(scope="session")
def spark_options(spark_server: SparkServer) -> SparkOptions:
    return SparkOptions(remote=spark_server.remote, shuffle_partitions=1)


@pytest.fixture(scope="session")
def spark_session(spark_options: SparkOptions) -> Iterator[Any]:
    session = connect(spark_options)
    yield session
    session.stop()


def spark_job(options: SparkOptions, catalog: Catalog, plan: Plan) -> SparkJob:
    """The plan's statements rendered for Spark, as the calling process renders them (raises
    SQLRejected where Spark cannot give DuckDB's meaning)."""
    datasets = {name: catalog.get(name) for name in plan.attach}
    statements = render_spark(
        plan,
        {name: dataset_schema(d) for name, d in datasets.items()},
        {name: str(d.artefact_path) for name, d in datasets.items()},
        {name: dataset_version(d) for name, d in datasets.items()},
    )
    return SparkJob(options, statements)


def spark_exact(session: Any, options: SparkOptions, catalog: Catalog, plan: Plan) -> Exact:
    """The plan's exact aggregates from Spark, as the worker computes them."""
    return SparkBackend(session).exact(plan, spark_job(options, catalog, plan))


def duckdb_exact(con: Any, plan: Plan) -> Exact:
    return DuckDBBackend(con).exact(plan)


def comparable(exact: Exact) -> tuple[dict, dict]:
    """Exact aggregates with group keys made comparable across engines: a key's type and value,
    NaN as one value (both engines group NaNs together) and -0.0 as 0.0 (both group the two
    zeros together and keep whichever they met first)."""

    def key(values: tuple) -> tuple:
        out = []
        for v in values:
            if isinstance(v, float):
                v = "nan" if math.isnan(v) else (0.0 if v == 0 else v)
            out.append((type(v).__name__, v))
        return tuple(out)

    aggregates = {key(k): {p: (type(v).__name__, v) for p, v in vs.items()} for k, vs in exact.aggregates.items()}
    histograms = {pid: {key(k): dict(h) for k, h in per.items()} for pid, per in exact.histograms.items()}
    return aggregates, histograms
