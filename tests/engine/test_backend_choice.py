"""Which backend serves which dataset comes from the settings, and a bad choice is refused
with the setting to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.engine.backend import BackendChoice, SparkOptions
from sandbox.settings import Settings


def test_default_is_duckdb_everywhere(tmp_path: Path) -> None:
    choice = BackendChoice.from_settings(Settings(data_dir=tmp_path))
    assert (choice.of("residents"), choice.spark) == ("duckdb", None)


def test_per_dataset_backends_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_DATASET_BACKENDS", '{"residents": "spark"}')
    monkeypatch.setenv("SANDBOX_SPARK_REMOTE", "sc://spark.internal:15002")
    monkeypatch.setenv("SANDBOX_SPARK_DATA_URL", "hdfs://nn/sandbox")
    choice = BackendChoice.from_settings(Settings(data_dir=tmp_path))
    assert (choice.of("residents"), choice.of("enterprises")) == ("spark", "duckdb")
    assert choice.spark.remote == "sc://spark.internal:15002"
    local = str(tmp_path.resolve() / "datasets" / "residents" / "engine.parquet")
    assert choice.spark.artefact_url(local) == "hdfs://nn/sandbox/datasets/residents/engine.parquet"


def test_spark_without_a_server_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_BACKEND", "spark")
    with pytest.raises(ValueError, match="SANDBOX_SPARK_REMOTE"):
        BackendChoice.from_settings(Settings(data_dir=tmp_path))


def test_an_artefact_outside_the_data_directory_is_refused() -> None:
    options = SparkOptions(remote="sc://x", data_dir="/srv/sandbox", data_url="s3a://bucket/sandbox")
    assert options.artefact_url("/srv/sandbox/datasets/a/engine.parquet") == "s3a://bucket/sandbox/datasets/a/engine.parquet"
    with pytest.raises(ValueError, match="not under the data directory"):
        options.artefact_url("/elsewhere/engine.parquet")
    assert SparkOptions(remote="sc://x").artefact_url("/any/path") == "/any/path"
