"""Honest answers, measured: an analyst's workload (benchmarks/workload.py) through the HTTP API
of a real server over the demo city, each released cell against the plain-DuckDB truth over the
raw demo files (every row: no bounding, no clamping, no noise).

The question is the one a reader of a release asks: is the truth inside the interval the release
reports (noise and estimated bias together)? Per query and per class: released cells, the share
whose interval holds the truth (the goal is >= 90% over all cells), the median relative error
|value - truth| / max(|truth|, 1), and the true groups that were not released (private keys below
the threshold). A cell whose interval has an open end (a ratio whose denominator may be 0) counts
as covering on that side; a truth that is NULL (an average over no rows) is not scored.

    python -m benchmarks.honest                    # demo scale 20,000, epsilon 1
    python -m benchmarks.honest --scale 5000 --queries 6   # a smoke run (tests/test_bench_smoke.py)

Writes benchmarks/results/honest.{md,json} (or --out-dir).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

from benchmarks.workload import WORKLOAD
from sandbox import accounts, agreements
from sandbox.catalog import Catalog
from sandbox.demo import build_demo
from sandbox.store import Store

__all__ = ["main", "run"]

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
GOAL = 0.90


def _seed(data_dir: Path, database: Path) -> tuple[str, str]:
    """A developer with one agreement over every private dataset and budget for the workload."""
    known = {d.name: set(d.policy.queryable()) for d in Catalog(data_dir).list() if not d.policy.public}
    store = Store(f"sqlite:///{database}")
    try:
        with store.transaction() as conn:
            admin, _ = accounts.create_user(conn, "Benchmark admin", "admin")
            operator, _ = accounts.create_user(conn, "Benchmark operator", "operator", by=admin)
            _, developer, token = accounts.create_licence(
                conn, operator, name="Analyst", organisation="Benchmark", licence_number="XM-BENCH-HONEST",
                valid_from="2020-01-01", valid_to="2100-01-01",
            )
            row = agreements.request(
                conn, developer, purpose="Honest-answers benchmark", legal_basis="Synthetic demo data",
                datasets={name: None for name in known}, valid_from="2020-01-01", valid_to="2100-01-01",
                epsilon=100.0, delta=1e-4, known=known,
            )
            agreements.approve(conn, operator, row["id"], per_query_epsilon=1.0, reason="benchmark")
    finally:
        store.close()
    return token, row["id"]


def _key(value: Any) -> str:
    """Keys as text, alike on both sides (DATE keys travel as text; 1980.0 and 1980 are one key)."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        value = value.date() if value.time() == datetime.min.time() else value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text[:-9] if text.endswith(" 00:00:00") else text


def _score(result: dict, truth_rows: list[tuple], keys: int) -> dict[str, Any]:
    columns = result["columns_noise"]
    truth = {tuple(_key(v) for v in row[:keys]): row[keys:] for row in truth_rows}
    cells = covered = 0
    errors: list[float] = []
    misses: list[str] = []
    released = set()
    for row, lower, upper, hidden in zip(
        result["rows"], result["lower"], result["upper"], result["suppressed"], strict=True
    ):
        key = tuple(_key(v) for v in row[:keys])
        released.add(key)
        if hidden:
            continue
        exact = truth.get(key)
        for j in range(keys, len(row)):
            if exact is not None:
                true = exact[j - keys]
            else:  # a public key with no rows: its count and sum are 0, its average is not scored
                true = 0 if columns[j].get("function") in ("count", "sum") else None
            value = row[j]
            if value is None or true is None or (isinstance(true, float) and math.isnan(true)):
                continue
            true = float(true)
            lo, hi = lower[j], upper[j]
            cells += 1
            inside = (lo is None or lo <= true + 1e-9 * max(1.0, abs(true))) and (
                hi is None or true <= hi + 1e-9 * max(1.0, abs(true))
            )
            covered += inside
            errors.append(abs(float(value) - true) / max(abs(true), 1.0))
            if not inside:
                misses.append(f"{'/'.join(key) or 'all'}: {value:.6g} in [{lo}, {hi}], truth {true:.6g}")
    return {
        "cells": cells,
        "covered": covered,
        "errors": errors,
        "misses": misses,
        "groups_true": len(truth),
        "groups_released": len(released),
        "groups_missing": len(set(truth) - released),
    }


def run(scale: int = 20_000, epsilon: float = 1.0, limit: int | None = None, log=print) -> dict[str, Any]:
    from tests.support.server import running_server  # a real uvicorn on loopback, stopped by PID

    workload = WORKLOAD[:limit] if limit else WORKLOAD
    with tempfile.TemporaryDirectory(prefix="honest-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        files = build_demo(data_dir / "demo", scale=scale)
        Catalog(data_dir).register_directory(REPO / "policies")
        log(f"demo city at scale {scale:,} built and registered in {time.perf_counter() - started:.0f} s")
        token, agreement = _seed(data_dir, data_dir / "sandbox.db")
        paths = {name: f"read_parquet('{path}')" for name, path in files.items()}
        truth_con = duckdb.connect()
        queries = []
        env = {"SANDBOX_JOBS_PER_MINUTE": "0"}
        with running_server(data_dir, f"sqlite:///{data_dir / 'sandbox.db'}", env=env) as server:
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
            for n, (kind, title, sql, truth_sql) in enumerate(workload, 1):
                response = http.post(
                    "/jobs", json={"sql": sql, "epsilon": epsilon, "agreement_id": agreement, "wait": 110}
                )
                job = response.json()
                if response.status_code != 201 or job.get("status") != "released":
                    raise SystemExit(f"{title}: not released ({response.status_code}): {response.text[:500]}")
                result = job["result"]
                keys = sum(1 for c in result["columns_noise"] if c.get("kind") == "key")
                truth_rows = truth_con.sql(truth_sql.format(**paths)).fetchall()
                score = _score(result, truth_rows, keys)
                queries.append({"class": kind, "title": title, "sql": sql, "notes": result["notes"]} | score)
                share = score["covered"] / score["cells"] if score["cells"] else float("nan")
                log(f"[{n}/{len(workload)}] {title}: {score['covered']}/{score['cells']} covered ({share:.0%})")
            http.close()
    return _summary(queries, scale, epsilon)


def _summary(queries: list[dict], scale: int, epsilon: float) -> dict[str, Any]:
    by_class: dict[str, list[dict]] = defaultdict(list)
    for q in queries:
        by_class[q["class"]].append(q)
    cells = sum(q["cells"] for q in queries)
    covered = sum(q["covered"] for q in queries)
    classes = {
        kind: {
            "queries": len(qs),
            "cells": sum(q["cells"] for q in qs),
            "coverage": _ratio(sum(q["covered"] for q in qs), sum(q["cells"] for q in qs)),
            "median_relative_error": _median([e for q in qs for e in q["errors"]]),
        }
        for kind, qs in by_class.items()
    }
    for q in queries:
        q["coverage"] = _ratio(q["covered"], q["cells"])
        q["median_relative_error"] = _median(q.pop("errors"))
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "epsilon": epsilon,
        "load_average": os.getloadavg()[0],
        "cells": cells,
        "coverage": _ratio(covered, cells),
        "goal": GOAL,
        "classes": classes,
        "queries": queries,
    }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def report(summary: dict[str, Any]) -> str:
    lines = [
        "# Honest answers: truth inside the reported interval",
        "",
        f"`python -m benchmarks.honest --scale {summary['scale']}` ({summary['when']}; demo city at scale "
        f"{summary['scale']:,}, ε = {summary['epsilon']:g} per query, through the HTTP API of a real server; "
        "truth: plain DuckDB over the raw demo files).",
        "",
        f"**{_pct(summary['coverage'])} of {summary['cells']:,} released cells have the truth inside their interval** "
        f"(goal ≥ {summary['goal']:.0%}: {'met' if (summary['coverage'] or 0) >= summary['goal'] else 'MISSED'}).",
        "",
        "| class | queries | cells | truth inside | median relative error |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, c in summary["classes"].items():
        lines.append(
            f"| {kind} | {c['queries']} | {c['cells']} | {_pct(c['coverage'])} | {_pct(c['median_relative_error'])} |"
        )
    lines += ["", "| query | cells | truth inside | median rel. error | groups released / true |",
              "|---|---:|---:|---:|---:|"]
    for q in summary["queries"]:
        lines.append(
            f"| {q['title']} | {q['cells']} | {_pct(q['coverage'])} | {_pct(q['median_relative_error'])} | "
            f"{q['groups_released']} / {q['groups_true']} |"
        )
    misses = [(q["title"], m) for q in summary["queries"] for m in q["misses"]]
    if misses:
        lines += ["", "Cells whose interval missed the truth:", ""]
        lines += [f"- {title}: {m}" for title, m in misses[:60]]
        if len(misses) > 60:
            lines.append(f"- … and {len(misses) - 60} more (honest.json)")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.honest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20_000, help="residents in the demo city (default 20,000)")
    parser.add_argument("--epsilon", type=float, default=1.0, help="epsilon per query (default 1)")
    parser.add_argument("--queries", type=int, default=None, help="only the first N queries (a smoke run)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where honest.md/json go")
    args = parser.parse_args(argv)
    summary = run(args.scale, args.epsilon, args.queries)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "honest.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (args.out_dir / "honest.md").write_text(report(summary))
    print(report(summary))


if __name__ == "__main__":
    main()
