"""`make bench` still works: the engine benchmark runs end to end at a tiny size.

It goes through the real entry point (`python -m benchmarks.run`) in a subprocess, as `make
bench` does, so the spawned workers see the same `__main__` they will see there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_engine_benchmark_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable, "-m", "benchmarks.run", "--sizes", "2k", "--runs", "1",
            "--warmup", "0", "--data-dir", str(tmp_path / "data"), "--out-dir", str(out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads((out / "engine_vs_duckdb.json").read_text())
    results = report["results"]
    assert {(r["dataset"], r["query"]) for r in results} == {
        ("residents", "GROUP BY district (public keys)"),
        ("social_insurance", "ungrouped"),
        ("social_insurance", "GROUP BY YEAR(month) (private keys)"),
    }
    contenders = {"exact", "exact_parquet", "bounded", "engine", "engine_execute"}
    for r in results:
        assert set(r["seconds"]) == contenders
        assert all(len(times) == 1 and times[0] > 0 for times in r["seconds"].values())
        assert "SUM(\"__q_" in r["bounded_sql"], "bounded sums read the grid stored at registration"
        assert r["target"] == "overhead <= 50 ms"
    assert {s["dataset"] for s in report["setup"]} == {"residents", "social_insurance"}
    table = (out / "engine_vs_duckdb.md").read_text()
    assert "| dataset | rows | query | DuckDB exact Parquet ms |" in table
    assert table.count("\n| social_insurance |") == 4  # two queries, in both tables
