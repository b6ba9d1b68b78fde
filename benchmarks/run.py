"""`make bench`: run the benchmarks (not part of the test suite).

    python -m benchmarks.run --sizes 10k,1m,10m --runs 7
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
    args = parser.parse_args(argv)
    engine_vs_duckdb.main(
        [s for s in args.sizes.split(",") if s.strip()],
        runs=args.runs,
        warmup=args.warmup,
        data_dir=args.data_dir,
        out_dir=args.out_dir,
    )


if __name__ == "__main__":
    main()
