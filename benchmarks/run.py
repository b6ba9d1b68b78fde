"""`make bench`: run the benchmarks (not part of the test suite).

Three suites, all by default: `engine` (engine vs DuckDB on the demo city, engine_vs_duckdb.py),
`peers` (side by side with SmartNoise SQL and OpenDP: speed and memory at 1M/10M rows,
accuracy at 100k rows; peers.py, accuracy.py; each peer in its own venv under benchmarks/envs/)
and `honest` (an analyst's workload through the HTTP API against the truth: honest.py).

    python -m benchmarks.run --sizes 10k,1m,10m --runs 7
    python -m benchmarks.run --suite peers --peer-sizes 1m,10m --with-100m
    python -m benchmarks.run --suite peers --accuracy-only --releases 1000   # sharper accuracy
    python -m benchmarks.run --suite peers --peer-sizes 20k --runs 1 --releases 5 --no-peers  # smoke
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks import engine_vs_duckdb


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--sizes", default="10k,1m,10m", help="rows per dataset, comma-separated (10k,1m,10m)"
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs per contender (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default 1)")
    parser.add_argument(
        "--data-dir", type=Path, default=engine_vs_duckdb.DATA_DIR, help="cache of built demo data"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=engine_vs_duckdb.RESULTS_DIR, help="where results go"
    )
    parser.add_argument("--suite", default="engine,peers,honest", help="engine, peers, honest (default all three)")
    parser.add_argument("--honest-scale", type=int, default=20_000, help="demo scale of the honest-answers workload")
    parser.add_argument("--peer-sizes", default="1m,10m", help="rows for the peers suite (default 1m,10m)")
    parser.add_argument("--with-100m", action="store_true", help="add 100M rows to the peers suite (ours only)")
    parser.add_argument("--peer-runs", type=int, default=5, help="timed runs per system, peers suite (default 5)")
    parser.add_argument(
        "--peers-max-rows", default="10m", help="largest size the peers run at (default 10m; above it: ours only)"
    )
    parser.add_argument("--accuracy-rows", default="100k", help="rows for the accuracy study (default 100k)")
    parser.add_argument("--releases", type=int, default=200, help="releases per system in the accuracy study")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the accuracy study")
    parser.add_argument(
        "--accuracy-only",
        action="store_true",
        help="run only the accuracy study and store it in the existing peers.json (speed results kept)",
    )
    parser.add_argument("--no-peers", action="store_true", help="ours and DuckDB only (no peer venvs)")
    parser.add_argument("--no-service", action="store_true", help="skip the HTTP service contender")
    parser.add_argument("--peer-data-dir", type=Path, default=None, help="cache of the peers suite's data")
    args = parser.parse_args(argv)
    suites = {s.strip() for s in args.suite.split(",") if s.strip()}
    if unknown := suites - {"engine", "peers", "honest"}:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}; use engine, peers, honest")
    if "honest" in suites:
        from benchmarks import honest

        honest.main(["--scale", str(args.honest_scale), "--out-dir", str(args.out_dir)])
    if "engine" in suites:
        engine_vs_duckdb.main(
            [s for s in args.sizes.split(",") if s.strip()],
            runs=args.runs,
            warmup=args.warmup,
            data_dir=args.data_dir,
            out_dir=args.out_dir,
        )
    if "peers" in suites:
        from benchmarks import accuracy, peers

        peer_data = args.peer_data_dir or (
            peers.DATA_DIR if args.data_dir == engine_vs_duckdb.DATA_DIR else args.data_dir / "peers"
        )
        acc = None
        if not args.no_accuracy:
            acc = accuracy.main(
                engine_vs_duckdb.parse_size(args.accuracy_rows),
                args.releases,
                data_dir=peer_data,
                no_peers=args.no_peers,
            )
        if args.accuracy_only:
            peers.store_accuracy(acc, args.out_dir)
            return
        sizes = [s for s in args.peer_sizes.split(",") if s.strip()] + (["100m"] if args.with_100m else [])
        peers.main(
            sizes,
            runs=args.peer_runs,
            warmup=args.warmup,
            data_dir=peer_data,
            out_dir=args.out_dir,
            no_peers=args.no_peers,
            service=not args.no_service,
            peers_max_rows=engine_vs_duckdb.parse_size(args.peers_max_rows),
            accuracy=acc,
        )


if __name__ == "__main__":
    main()
