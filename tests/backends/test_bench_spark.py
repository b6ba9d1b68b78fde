"""`python -m benchmarks.spark_vs_duckdb` still runs: end to end at 2,000 rows on the session's
Spark Connect server (the Spark catalog adopting DuckDB's artefact, as the 100M run does), and
a later run at another size keeps the sizes it did not measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import spark_vs_duckdb
from tests.support.spark import SparkServer


@pytest.mark.timeout(900)
def test_spark_benchmark_runs_and_keeps_other_sizes(
    tmp_path: Path, spark_server: SparkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_SPARK_REMOTE", spark_server.remote)
    out = tmp_path / "results"
    out.mkdir()
    setup = {"rows": 1_000_000, "disk_mib": 1.0}
    earlier = {"when": "2026-01-01T00:00:00+00:00", "sizes": [{"size": "1m", "setup": setup, "results": []}]}
    (out / "spark_vs_duckdb.json").write_text(json.dumps(earlier))
    spark_vs_duckdb.main(["2k"], runs=1, warmup=0, data_dir=tmp_path / "data", out_dir=out, adopt=["2k"])
    report = json.loads((out / "spark_vs_duckdb.json").read_text())
    assert [s["size"] for s in report["sizes"]] == ["2k", "1m"]
    assert report["sizes"][1]["when"] == "2026-01-01T00:00:00+00:00"
    measured = report["sizes"][0]
    assert measured["setup"]["spark_artefact"].startswith("adopted")
    assert len(measured["results"]) == len(spark_vs_duckdb.CASES)
    for result in measured["results"]:
        assert set(result["median_ms"]) == set(spark_vs_duckdb.CONTENDERS)
        assert all(v > 0 for v in result["median_ms"].values())
        assert "`sandbox_people_" in result["spark_sql"]  # our statements, on the artefact's view
        assert result["load_average"] >= 0
    table = (out / "spark_vs_duckdb.md").read_text()
    assert "| 2,000 | filtered COUNT |" in table and "adopted from the DuckDB registration" in table
