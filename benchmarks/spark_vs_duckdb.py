"""DuckDB vs Spark: registration and releases at 10M and 100M rows (1B behind --with-1b), each
beside the engine it runs on computing the same exact aggregate without us.

Per size (the peers suite's `people` table, one row per person, written in chunks of a million
rows by benchmarks/peer_data.py, so 1B rows never sit in memory):
- registration on each backend (keyed-hash ranks, verification, the engine artefact), timed once
  and cached under `benchmarks/data/<scale>/` (DuckDB) and `.../spark/` (Spark, same secret);
- per query, interleaved rounds after a warm-up (medians reported):
  `duckdb_exact`  the analyst's SQL, unbounded and without noise, on a warm DuckDB connection;
  `duckdb_engine` `Engine.run` on the DuckDB backend;
  `spark_raw`     the analyst's SQL, unbounded and without noise, as raw Spark SQL on the source
                  Parquet, through the same Spark Connect server (our overhead is judged on it);
  `spark_bounded` our rendered statements run directly on Spark (no worker, no noise);
  `spark_engine`  `Engine.run` on the Spark backend (compile, worker = Connect client, noise).

Spark is a local Spark Connect server (pyspark's own, `local[2]`, started here) unless
SANDBOX_SPARK_REMOTE points at one. Results: results/spark_vs_duckdb.{json,md}.

    python -m benchmarks.spark_vs_duckdb --sizes 10m,100m --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import peer_data
from benchmarks.engine_vs_duckdb import DATA_DIR, RESULTS_DIR, THREADS, connect, measure, parse_size
from sandbox.catalog import Catalog
from sandbox.engine import BackendChoice, Engine, Limits
from sandbox.engine.backend import SparkOptions
from sandbox.policy import load_policy

POLICIES = peer_data.POLICIES

__all__ = ["CASES", "main"]

CASES = (
    ("grouped COUNT, SUM, AVG (4 public keys)",
     "SELECT grp, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS mean FROM {table} GROUP BY grp"),
    ("filtered COUNT", "SELECT COUNT(*) AS n FROM {table} WHERE age >= 65"),
    ("filtered grouped SUM", "SELECT grp, SUM(income) AS total FROM {table} WHERE age BETWEEN 30 AND 60 GROUP BY grp"),
)  # fmt: skip
CONTENDERS = ("duckdb_exact", "duckdb_engine", "spark_raw", "spark_bounded", "spark_engine")


def _catalogs(nominal: int, options: SparkOptions, data_dir: Path) -> tuple[Catalog, Catalog, dict[str, Any]]:
    """`people` with `nominal` rows, registered on DuckDB and on Spark (same secret, same file);
    each step timed once and cached."""
    root = data_dir / "spark_vs_duckdb" / str(nominal)
    setup_file = root / "setup.json"
    setup = json.loads(setup_file.read_text()) if setup_file.exists() else {}
    root.mkdir(parents=True, exist_ok=True)
    source = root / "people.parquet"
    if not source.exists():
        print(f"  writing {nominal:,} rows ...", flush=True)
        start = time.perf_counter()
        peer_data._write(source, peer_data._people_chunks(nominal))
        setup["write_seconds"] = time.perf_counter() - start
    duck = Catalog(root / "duckdb", backends=BackendChoice())
    (root / "spark").mkdir(exist_ok=True)
    if not (root / "spark" / "secret.key").exists():
        shutil.copy(root / "duckdb" / "secret.key", root / "spark" / "secret.key")
    spark = Catalog(root / "spark", backends=BackendChoice(default="spark", spark=options))
    policy_file = POLICIES / "people.yaml"
    policy = load_policy(policy_file)
    policy = policy.model_copy(update={"source": policy.source.model_copy(update={"location": str(source)})})
    for name, catalog in (("duckdb", duck), ("spark", spark)):
        manifest = catalog.datasets_dir / "people" / "manifest.json"
        before = manifest.read_text() if manifest.exists() else None
        print(f"  registering on {name} ...", flush=True)
        start = time.perf_counter()
        catalog.register(policy)
        if manifest.read_text() != before:
            setup[f"register_{name}_seconds"] = time.perf_counter() - start
    setup["disk_mib"] = _disk(root)
    setup["rows"] = duck.get("people").rows
    setup_file.write_text(json.dumps(setup, indent=2))
    return duck, spark, setup


def bench_size(nominal: int, options: SparkOptions, session: Any, runs: int, warmup: int, data_dir: Path):
    duck_catalog, spark_catalog, setup = _catalogs(nominal, options, data_dir)
    source = str(duck_catalog.data_dir.parent / "people.parquet")
    ds = duck_catalog.get("people")
    results = []
    # A job at 100M rows and more needs more than the default 1 GB (compiler/work.py refuses what
    # could exceed the limit): 4 GB of DuckDB memory, 8 GB of address space, 10 minutes.
    limits = Limits(wall_seconds=600, memory_mb=4096, address_space_mb=8192)
    with (
        Engine(duck_catalog, workers=1, limits=limits) as duck,
        Engine(spark_catalog, workers=1, limits=limits) as spark,
    ):
        for label, template in CASES:
            sql = template.format(table="people")
            duck.explain(sql, epsilon=1.0)
            statements = spark.spark_statements(spark.explain(sql, epsilon=1.0))
            exact = connect({"db": ds.engine_path})
            exact_sql = template.format(table="db.data")
            raw_sql = template.format(table=f"parquet.`{options.artefact_url(source)}`")

            contenders: dict[str, Callable[[], object]] = {
                "duckdb_exact": lambda exact=exact, exact_sql=exact_sql: exact.execute(exact_sql).fetchall(),
                "duckdb_engine": lambda sql=sql: duck.run(sql, epsilon=1.0),
                "spark_raw": lambda raw_sql=raw_sql: session.sql(raw_sql).collect(),
                "spark_bounded": lambda s=statements: session.sql(s.aggregate).collect(),
                "spark_engine": lambda sql=sql: spark.run(sql, epsilon=1.0),
            }
            print(f"  {nominal:,} rows, {label}: {warmup} warm-up + {runs} runs", flush=True)
            times = measure(contenders, runs, warmup)
            exact.close()
            stats = {name: statistics.median(values) * 1e3 for name, values in times.items()}
            results.append({
                "rows": ds.rows, "query": label, "sql": sql, "spark_sql": statements.aggregate,
                "median_ms": stats, "seconds": times,
                "spark_engine_over_raw": stats["spark_engine"] / stats["spark_raw"],
                "duckdb_engine_over_exact": stats["duckdb_engine"] / stats["duckdb_exact"],
                "spark_over_duckdb_engine": stats["spark_engine"] / stats["duckdb_engine"],
            })  # fmt: skip
    return setup, results


def _disk(root: Path) -> float:
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 2**20


def main(sizes: Sequence[str], *, runs: int, warmup: int, data_dir: Path, out_dir: Path) -> dict[str, Any]:
    from benchmarks.engine_vs_duckdb import console  # one console for the suites' progress

    with ExitStack() as stack:
        remote = os.environ.get("SANDBOX_SPARK_REMOTE")
        if remote is None:
            from tests.support.spark import spark_connect_server

            server = stack.enter_context(spark_connect_server(data_dir / "spark-server", memory="6g"))
            remote = server.remote
        options = SparkOptions(remote=remote, shuffle_partitions=THREADS * 2)
        from sandbox.engine.spark_backend import connect as spark_connect

        session = spark_connect(options)
        stack.callback(session.stop)
        report: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "remote": "local Spark Connect server, local[2]" if "SANDBOX_SPARK_REMOTE" not in os.environ else remote,
            "runs": runs,
            "warmup": warmup,
            "sizes": [],
        }
        for size in sizes:
            console.print(f"[bold]Spark vs DuckDB at {size} rows[/bold]")
            setup, results = bench_size(parse_size(size), options, session, runs, warmup, data_dir)
            report["sizes"].append({"size": size, "setup": setup, "results": results})
            _write(report, out_dir)
    return report


def _write(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spark_vs_duckdb.json").write_text(json.dumps(report, indent=2, default=str))
    lines = [
        "# DuckDB vs Spark",
        "",
        f"{report['when']}, {report['remote']}; {report['runs']} interleaved runs after {report['warmup']} "
        "warm-up; medians in ms. raw Spark = the analyst's SQL, exact and unbounded, on the source Parquet "
        "through the same Connect server.",
        "",
        "| rows | query | DuckDB exact | our engine on DuckDB | raw Spark SQL | our SQL on Spark | our engine on Spark "
        "| Spark engine / raw Spark | DuckDB engine / exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in report["sizes"]:
        for r in size["results"]:
            m = r["median_ms"]
            lines.append(
                f"| {r['rows']:,} | {r['query']} | {m['duckdb_exact']:,.1f} | {m['duckdb_engine']:,.1f} | "
                f"{m['spark_raw']:,.0f} | {m['spark_bounded']:,.0f} | {m['spark_engine']:,.0f} | "
                f"{r['spark_engine_over_raw']:.2f}x | {r['duckdb_engine_over_exact']:.2f}x |"
            )
    lines += [
        "",
        "| rows | register on DuckDB s | register on Spark s | disk (both catalogs, sources) MiB |",
        "|---|---|---|---|",
    ]
    for size in report["sizes"]:
        s = size["setup"]
        duck, spark = s.get("register_duckdb_seconds"), s.get("register_spark_seconds")
        lines.append(
            f"| {s['rows']:,} | {duck:.1f} | {spark:.1f} | {s['disk_mib']:,.0f} |"
            if duck and spark
            else f"| {s['rows']:,} | {duck} | {spark} | {s['disk_mib']:,.0f} |"
        )
    (out_dir / "spark_vs_duckdb.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark_vs_duckdb", description=__doc__)
    parser.add_argument("--sizes", default="10m,100m")
    parser.add_argument("--with-1b", action="store_true", help="add 1B rows (hours and ~100 GB of disk)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s.strip()] + (["1000m"] if args.with_1b else [])
    main(sizes, runs=args.runs, warmup=args.warmup, data_dir=args.data_dir, out_dir=args.out_dir)
