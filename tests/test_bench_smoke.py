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


@pytest.mark.timeout(600)  # a few seconds on quiet cores; shared machines are much slower
def test_engine_benchmark_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable, "-m", "benchmarks.run", "--suite", "engine", "--sizes", "2k", "--runs", "1",
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
        assert r["target"] == "execute - exact <= 3 ms"  # the engine's own cost per release, at 10k rows and below
    assert {s["dataset"] for s in report["setup"]} == {"residents", "social_insurance"}
    table = (out / "engine_vs_duckdb.md").read_text()
    assert "| dataset | rows | query | DuckDB exact Parquet ms |" in table
    assert table.count("\n| social_insurance |") == 4  # two queries, in both tables


@pytest.mark.timeout(600)  # ~15 s on two quiet cores; a busy machine (other suites) is slower
def test_peers_benchmark_smoke_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    """The side-by-side suite at two tiny sizes, one run each, no peer venvs (`--no-peers`):
    data generation, registration, DuckDB exact/bounded, the engine, the HTTP service, the
    accuracy study and the report (with its scaling table) all run; the peers show up as
    skipped, never with numbers."""
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable, "-m", "benchmarks.run", "--suite", "peers", "--peer-sizes", "2k,4k",
            "--peer-runs", "1", "--warmup", "0", "--no-peers", "--accuracy-rows", "2k",
            "--releases", "3", "--data-dir", str(tmp_path / "data"), "--out-dir", str(out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads((out / "peers.json").read_text())
    size, larger = report["sizes"]
    assert (size["rows"], larger["rows"]) == (2_000, 4_000)
    queries = {r["query"] for r in size["results"]}
    assert queries == {"count", "sum", "mean", "median", "private_keys", "filtered_count", "multirow"}
    for r in size["results"]:
        assert set(r["stats"]) == {"duckdb_exact", "duckdb_bounded", "engine", "engine_fresh", "service"}, r["errors"]
        assert all(s["n"] == 1 and s["median_s"] > 0 for s in r["stats"].values())
        assert r["errors"]["smartnoise"].startswith("blocked: skipped")
        # registration already bounded every query (ranks, verified constant groups): no window
        assert not any("OVER (" in sql for sql in r["bounded_sql"]), (r["query"], r["bounded_sql"])
    assert size["memory_mib"]["engine_workers"]
    accuracy = report["accuracy"]
    assert accuracy["releases"] == 3
    count = accuracy["queries"]["count"]["systems"]["engine"]["errors"]["n"]
    assert count["cells"] == 3 * 4 and count["released_share"] == 1.0
    table = (out / "peers.md").read_text()
    assert "| grouped COUNT, 4 public groups |" in table and "## Goals" in table
    assert "| grouped COUNT, 4 public groups | our engine |" in table.split("## Scaling")[1]
    assert (out / "peers_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(600)
def test_honest_answers_benchmark_scores_every_released_cell(tmp_path: Path) -> None:
    """The workload through a real server at a tiny scale: every query released, every released
    cell scored against the truth, per class and per query, in JSON and Markdown."""
    out = tmp_path / "results"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.honest", "--scale", "2000", "--queries", "4", "--out-dir", str(out)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    report = json.loads((out / "honest.json").read_text())
    assert len(report["queries"]) == 4 and report["epsilon"] == 1.0
    for query in report["queries"]:
        assert query["cells"] > 0 and 0 <= query["covered"] <= query["cells"]
        assert query["groups_released"] > 0
    assert report["cells"] == sum(q["cells"] for q in report["queries"])
    assert report["coverage"] == sum(q["covered"] for q in report["queries"]) / report["cells"]
    assert set(report["classes"]) == {"count, public keys"}
    table = (out / "honest.md").read_text()
    assert "released cells have the truth inside their interval" in table and "| residents by district |" in table
