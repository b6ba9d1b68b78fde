"""The engine end to end on Spark: the worker is the Spark Connect client, releases carry the
same noise plan as on DuckDB, refusals happen before data is read, and failures say nothing of
Spark's message."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from sandbox.catalog import Catalog
from sandbox.demo import build_demo
from sandbox.engine import BackendChoice, Engine, WorkerLimits
from sandbox.engine.backend import SparkOptions
from sandbox.engine.spark_session import SESSION_SETTINGS, connect, query_rows
from sandbox.errors import QueryFailed, SQLRejected
from sandbox.policy import load_policies
from tests.conftest import POLICIES

SQL = "SELECT district, COUNT(*) AS n, AVG(monthly_income) AS income FROM residents GROUP BY district"


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory, spark_options: SparkOptions) -> tuple[Catalog, Catalog]:
    root = tmp_path_factory.mktemp("spark-engine")
    build_demo(root / "duckdb" / "demo", scale=800)
    shutil.copytree(root / "duckdb" / "demo", root / "spark" / "demo")
    duck = Catalog(root / "duckdb", backends=BackendChoice())
    shutil.copy(root / "duckdb" / "secret.key", root / "spark" / "secret.key")
    spark = Catalog(root / "spark", backends=BackendChoice(default="spark", spark=spark_options))
    for name in ("residents", "medical_visits"):
        policy, file = load_policies(POLICIES)[name]
        duck.register(policy, file)
        spark.register(policy, file)
    return duck, spark


@pytest.fixture(scope="module")
def spark_engine(catalogs: tuple[Catalog, Catalog]) -> Any:
    with Engine(catalogs[1], workers=1, limits=WorkerLimits(wall_seconds=120)) as engine:
        yield engine


def test_release_on_spark(spark_engine: Engine, catalogs: tuple[Catalog, Catalog]) -> None:
    release = spark_engine.run(SQL, epsilon=1.0)
    assert release.table.columns == ["district", "n", "income"]
    assert sorted(release.table["district"].to_list()) == sorted(
        catalogs[1].get("residents").policy.columns["district"].keys
    )
    assert release.accuracy["n"].null_count() == 0
    with Engine(catalogs[0], workers=1) as duck:
        assert duck.explain(SQL, epsilon=1.0).primitives == spark_engine.explain(SQL, epsilon=1.0).primitives


@pytest.mark.parametrize("compile_with", ["engine", "compiler"])
def test_spark_refusal_is_at_compile_time(compile_with: str, spark_engine: Engine, catalogs) -> None:
    """The service compiles with compile_query: the refusal is a rejected query, nothing charged."""
    from sandbox.compiler import compile_query

    sql = "SELECT COUNT(*) FROM residents WHERE UPPER(sex) = 'F'"
    with pytest.raises(SQLRejected) as refused:
        if compile_with == "engine":
            spark_engine.explain(sql, epsilon=1.0)
        else:
            compile_query(sql, catalogs[1], epsilon=1.0)
    assert refused.value.fields["rule"] == "spark_dialect"
    assert "Spark" in refused.value.message
    compile_query(sql, catalogs[0], epsilon=1.0)  # the same query on the DuckDB-backed copy is fine


def test_a_plan_spark_cannot_render_fails_before_reading(spark_engine: Engine, catalogs) -> None:
    """A plan compiled elsewhere (here: for the DuckDB-backed copy, without the Spark check) is
    rendered before any statement runs: refused, nothing read, nothing charged."""
    from sandbox.compiler import compile_query

    plan = compile_query("SELECT COUNT(*) FROM residents WHERE UPPER(sex) = 'F'", catalogs[0], epsilon=1.0)
    with pytest.raises(QueryFailed) as failed:
        spark_engine.execute(plan)
    assert not failed.value.data_touched and "Spark" in failed.value.message


def test_session_settings_are_ours(spark_options: SparkOptions) -> None:
    """The server's JVM runs in Asia/Shanghai; every session we open says UTC, ANSI, our partitions."""
    session = connect(spark_options)
    try:
        conf = {key: session.conf.get(key) for key in SESSION_SETTINGS}
        assert conf["spark.sql.ansi.enabled"] == "true"
        assert conf["spark.sql.session.timeZone"] == "UTC"
        assert conf["spark.sql.shuffle.partitions"] == str(spark_options.shuffle_partitions)
        assert session.sql("SELECT CAST(TIMESTAMP '2024-01-01 00:00:00' AS STRING)").collect()[0][0] == (
            "2024-01-01 00:00:00"
        )
    finally:
        session.stop()


def test_a_select_is_sent_once(spark_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`query_rows` sends the statement with `collect()` alone: no command round trip first, in
    which the server would parse, analyse and plan it once more (spark_session.py)."""

    def no_command(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a command was sent")

    monkeypatch.setattr(spark_session.client, "execute_command", no_command)
    assert [tuple(row) for row in query_rows(spark_session, "SELECT 1 + 1 AS two")] == [(2,)]


def test_spark_failure_is_generic(spark_engine: Engine, catalogs, caplog: pytest.LogCaptureFixture) -> None:
    """A statement that fails on the cluster (here: its artefact is gone) fails generically: no
    Spark message, no SQL, no path in the error or the log."""
    dataset = catalogs[1].get("medical_visits")
    plan = spark_engine.explain("SELECT COUNT(*) FROM medical_visits", epsilon=1.0)
    hidden = dataset.artefact_path.with_name("moved-away")
    dataset.artefact_path.rename(hidden)
    try:
        with pytest.raises(QueryFailed) as failed:
            spark_engine.execute(plan)
    finally:
        hidden.rename(dataset.artefact_path)
    assert failed.value.data_touched
    text = failed.value.message + caplog.text
    assert "PATH_NOT_FOUND" not in text and "engine.parquet" not in text and "SELECT" not in text


def test_one_query_runs_on_one_backend(catalogs, spark_options: SparkOptions) -> None:
    duck, _ = catalogs
    mixed = Catalog(
        duck.data_dir.parent / "mixed",
        backends=BackendChoice(datasets={"medical_visits": "spark"}, spark=spark_options),
    )
    shutil.copytree(duck.data_dir / "demo", mixed.data_dir / "demo", dirs_exist_ok=True)
    for name in ("residents", "medical_visits"):
        policy, file = load_policies(POLICIES)[name]
        mixed.register(policy, file)
    assert (mixed.get("residents").backend, mixed.get("medical_visits").backend) == ("duckdb", "spark")
    from sandbox.compiler import compile_query

    sql = (
        "SELECT r.district, COUNT(*) FROM residents r JOIN medical_visits v ON r.person_id = v.person_id "
        "GROUP BY r.district"
    )
    with pytest.raises(SQLRejected, match="different backends") as refused:
        compile_query(sql, mixed, epsilon=1.0)
    assert refused.value.fields["rule"] == "one_backend"
    with Engine(mixed, workers=1) as engine, pytest.raises(SQLRejected, match="different backends"):
        engine.explain(sql, epsilon=1.0)
