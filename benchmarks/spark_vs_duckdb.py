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
                  Parquet (a temporary view over it, as `spark.read.parquet(...)
                  .createOrReplaceTempView(...)` makes), through the same Spark Connect server
                  (our overhead is judged on it);
  `spark_bounded` our rendered statements run directly on Spark (no worker, no noise);
  `spark_engine`  `Engine.run` on the Spark backend (compile, worker = Connect client, noise).

Spark is a local Spark Connect server (pyspark's own, `local[2]`, started here) unless
SANDBOX_SPARK_REMOTE points at one. Results: results/spark_vs_duckdb.{json,md}.

`--adopt-duckdb-artefact 100m` serves the Spark catalog at that size from the DuckDB registration's
engine artefact instead of registering on Spark (tests/backends/test_registration.py shows the two
registrations write the same artefact bit for bit): on 2 shared cores, registering 100M rows on
Spark takes well over an hour, while the query comparison only needs the artefact. The report then
says the Spark registration was not timed at that size.

    python -m benchmarks.spark_vs_duckdb --sizes 10m,100m --runs 5
    python -m benchmarks.spark_vs_duckdb --sizes 100m --runs 3 --adopt-duckdb-artefact 100m
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
from sandbox.engine import BackendChoice, Engine, WorkerLimits
from sandbox.engine.backend import SparkOptions
from sandbox.engine.spark_backend import SparkBackend
from sandbox.engine.spark_session import query_rows
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


def _catalogs(
    nominal: int, options: SparkOptions, data_dir: Path, adopt: bool = False
) -> tuple[Catalog, Catalog, dict[str, Any]]:
    """`people` with `nominal` rows, registered on DuckDB and on Spark (same secret, same file);
    each step timed once and cached. `adopt`: the Spark catalog serves DuckDB's artefact."""
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
        if name == "spark" and adopt:
            _adopt(duck.datasets_dir / "people", spark.datasets_dir / "people")
            setup["spark_artefact"] = "adopted from the DuckDB registration (registration on Spark not timed)"
            setup.pop("register_spark_seconds", None)
            continue
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


def _adopt(source: Path, target: Path) -> None:
    """The DuckDB registration's dataset directory as a Spark-backed one (hard links, a manifest
    that says so)."""
    if target.exists():
        for file in target.iterdir():
            file.chmod(0o600)
        shutil.rmtree(target)
    shutil.copytree(source, target, copy_function=os.link)
    manifest_file = target / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["backend"] = "spark"
    manifest["artefact"]["built_by"] = "duckdb (adopted by benchmarks/spark_vs_duckdb.py)"
    manifest_file.unlink()
    manifest_file.write_text(json.dumps(manifest, indent=2))


def bench_size(
    nominal: int, options: SparkOptions, session: Any, runs: int, warmup: int, data_dir: Path, adopt: bool = False
):
    duck_catalog, spark_catalog, setup = _catalogs(nominal, options, data_dir, adopt)
    source = str(duck_catalog.data_dir.parent / "people.parquet")
    ds = duck_catalog.get("people")
    results = []
    # A job at 100M rows and more needs more than the default 1 GB (compiler/work.py refuses what
    # could exceed the limit): 4 GB of DuckDB memory, 8 GB of address space, 10 minutes.
    limits = WorkerLimits(wall_seconds=600, memory_mb=4096, address_space_mb=8192)
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
            # raw Spark SQL reads the source through a view of its own; ours, what a worker's session has
            SparkBackend(session).create_views({"raw_people": options.artefact_url(source), **statements.views})
            raw_sql = template.format(table="raw_people")

            contenders: dict[str, Callable[[], object]] = {
                "duckdb_exact": lambda exact=exact, exact_sql=exact_sql: exact.execute(exact_sql).fetchall(),
                "duckdb_engine": lambda sql=sql: duck.run(sql, epsilon=1.0),
                # both planned once, as the worker's statements are (spark_session.query_rows)
                "spark_raw": lambda raw_sql=raw_sql: query_rows(session, raw_sql),
                "spark_bounded": lambda s=statements: query_rows(session, s.aggregate),
                "spark_engine": lambda sql=sql: spark.run(sql, epsilon=1.0),
            }
            print(f"  {nominal:,} rows, {label}: {warmup} warm-up + {runs} runs", flush=True)
            load = os.getloadavg()[0]  # a shared machine: the load beside each figure
            times = measure(contenders, runs, warmup)
            load = (load + os.getloadavg()[0]) / 2
            exact.close()
            stats = {name: statistics.median(values) * 1e3 for name, values in times.items()}
            results.append({
                "rows": ds.rows, "query": label, "sql": sql, "spark_sql": statements.aggregate,
                "median_ms": stats, "seconds": times, "load_average": load,
                "spark_engine_over_raw": stats["spark_engine"] / stats["spark_raw"],
                "duckdb_engine_over_exact": stats["duckdb_engine"] / stats["duckdb_exact"],
                "spark_over_duckdb_engine": stats["spark_engine"] / stats["duckdb_engine"],
            })  # fmt: skip
    return setup, results


def _disk(root: Path) -> float:
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 2**20


def main(
    sizes: Sequence[str], *, runs: int, warmup: int, data_dir: Path, out_dir: Path, adopt: Sequence[str] = ()
) -> dict[str, Any]:
    from benchmarks.engine_vs_duckdb import console  # one console for the suites' progress

    with ExitStack() as stack:
        remote = os.environ.get("SANDBOX_SPARK_REMOTE")
        if remote is None:
            from tests.support.spark import spark_connect_server

            server = stack.enter_context(spark_connect_server(data_dir / "spark-server", memory="6g"))
            remote = server.remote
        options = SparkOptions(remote=remote, shuffle_partitions=THREADS * 2)
        from sandbox.engine.spark_session import connect as spark_connect

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
            adopted = parse_size(size) in {parse_size(a) for a in adopt}
            setup, results = bench_size(parse_size(size), options, session, runs, warmup, data_dir, adopted)
            report["sizes"].append({"size": size, "when": _now(), "setup": setup, "results": results})
            _write(report, out_dir)
    return report


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(report: dict[str, Any], out_dir: Path) -> None:
    """The report, keeping the sizes of an earlier run that this one did not measure (each size
    says when it was measured)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = out_dir / "spark_vs_duckdb.json"
    if previous.exists():
        measured = {s["size"] for s in report["sizes"]}
        kept = [
            {**s, "when": s.get("when", old["when"])}
            for old in [json.loads(previous.read_text())]
            for s in old["sizes"]
            if s["size"] not in measured
        ]
        report = {**report, "sizes": sorted([*kept, *report["sizes"]], key=lambda s: parse_size(s["size"]))}
    (out_dir / "spark_vs_duckdb.json").write_text(json.dumps(report, indent=2, default=str))
    lines = [
        "# DuckDB vs Spark",
        "",
        f"{report['when']}, {report['remote']}; {report['runs']} interleaved runs after {report['warmup']} "
        "warm-up; medians in ms. raw Spark = the analyst's SQL, exact and unbounded, on the source Parquet "
        "through the same Connect server.",
        "",
        "| rows | query | DuckDB exact | our engine on DuckDB | raw Spark SQL | our SQL on Spark | our engine on Spark "
        "| Spark engine / raw Spark | DuckDB engine / exact | load average |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in report["sizes"]:
        for r in size["results"]:
            m = r["median_ms"]
            load = f"{r['load_average']:.1f}" if "load_average" in r else "-"
            lines.append(
                f"| {r['rows']:,} | {r['query']} | {m['duckdb_exact']:,.1f} | {m['duckdb_engine']:,.1f} | "
                f"{m['spark_raw']:,.0f} | {m['spark_bounded']:,.0f} | {m['spark_engine']:,.0f} | "
                f"{r['spark_engine_over_raw']:.2f}x | {r['duckdb_engine_over_exact']:.2f}x | {load} |"
            )
    lines += [
        "",
        "| rows | measured | register on DuckDB s | register on Spark s | disk (both catalogs, sources) MiB |",
        "|---|---|---|---|---|",
    ]
    for size in report["sizes"]:
        s = size["setup"]
        duck, spark = s.get("register_duckdb_seconds"), s.get("register_spark_seconds")
        duck_text = f"{duck:.1f}" if duck else "not timed in this run"
        spark_text = f"{spark:.1f}" if spark else s.get("spark_artefact", "not timed in this run")
        lines.append(f"| {s['rows']:,} | {size['when']} | {duck_text} | {spark_text} | {s['disk_mib']:,.0f} |")
    (out_dir / "spark_vs_duckdb.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark_vs_duckdb", description=__doc__)
    parser.add_argument("--sizes", default="10m,100m")
    parser.add_argument("--with-1b", action="store_true", help="add 1B rows (hours and ~100 GB of disk)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--adopt-duckdb-artefact", default="", help="sizes whose Spark catalog serves DuckDB's artefact (e.g. 100m)"
    )
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s.strip()] + (["1000m"] if args.with_1b else [])
    adopt = [s for s in args.adopt_duckdb_artefact.split(",") if s.strip()]
    main(sizes, runs=args.runs, warmup=args.warmup, data_dir=args.data_dir, out_dir=args.out_dir, adopt=adopt)
