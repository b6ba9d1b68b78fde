"""The side-by-side benchmark's data: two synthetic tables, written to Parquet in chunks.

- `people`: one row per person (`person_id`), a public group `grp` (4 keys, unequal sizes),
  a private-key `region` (200 keys with Zipf-like frequencies, so some are rare), `age` and a
  log-normal `income` (median ~30,000; ~1% above the policy bound 200,000).
- `visits`: 1-12 rows per person (1 + Poisson(2), mean ~3), the person's `grp` on every row and a
  log-normal `cost` (median ~200; bound 2,000). About as many rows as `people`.

Chunks of one million rows, each from its own seeded generator, so any size is reproducible
and memory stays flat (100M rows are written without ever holding more than a chunk). Every
system reads exactly these files: DuckDB and OpenDP's Polars scan them, SmartNoise loads them
into pandas, our catalog registers them (`benchmarks/policies/*.yaml`).

    python -m benchmarks.peer_data --rows 1000000 --out benchmarks/data/peers/1000000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["GROUPS", "REGIONS", "TABLES", "ensure", "register"]

HERE = Path(__file__).resolve().parent
POLICIES = HERE / "policies"
TABLES = ("people", "visits")
GROUPS = ("north", "south", "east", "west")
GROUP_P = np.array([0.4, 0.3, 0.2, 0.1])
REGIONS = tuple(f"r{i:03d}" for i in range(200))
_REGION_W = 1.0 / np.arange(1, len(REGIONS) + 1) ** 1.3
REGION_P = _REGION_W / _REGION_W.sum()
CHUNK = 1_000_000
SEED = 20_240_801
VISITS_PER_PERSON = 3.0  # expected rows per person in `visits`


def _people_chunks(rows: int) -> Iterator[pa.Table]:
    for index, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        rng = np.random.default_rng([SEED, 1, index])
        yield pa.table(
            {
                "person_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "grp": pa.DictionaryArray.from_arrays(
                    rng.choice(len(GROUPS), size=n, p=GROUP_P).astype(np.int32), list(GROUPS)
                ).cast(pa.string()),
                "region": pa.DictionaryArray.from_arrays(
                    rng.choice(len(REGIONS), size=n, p=REGION_P).astype(np.int32), list(REGIONS)
                ).cast(pa.string()),
                "age": pa.array(rng.integers(0, 100, size=n, dtype=np.int32)),
                "income": pa.array(np.round(rng.lognormal(np.log(30_000), 0.8, size=n), 2)),
            }
        )


def _visits_chunks(rows: int) -> Iterator[pa.Table]:
    """Persons in blocks; a block's rows are cut so the file has exactly `rows` rows."""
    per_block = int(CHUNK / VISITS_PER_PERSON)
    written, person, index = 0, 0, 0
    while written < rows:
        rng = np.random.default_rng([SEED, 2, index])
        counts = np.minimum(1 + rng.poisson(2.0, size=per_block), 12)
        groups = rng.choice(len(GROUPS), size=per_block, p=GROUP_P).astype(np.int32)
        ids = np.repeat(np.arange(person, person + per_block, dtype=np.int64), counts)
        grp = np.repeat(groups, counts)
        n = min(len(ids), rows - written)
        yield pa.table(
            {
                "person_id": pa.array(ids[:n]),
                "grp": pa.DictionaryArray.from_arrays(grp[:n], list(GROUPS)).cast(pa.string()),
                "cost": pa.array(np.round(rng.lognormal(np.log(200), 1.0, size=n), 2)),
            }
        )
        written, person, index = written + n, person + per_block, index + 1


def _write(path: Path, chunks: Iterator[pa.Table]) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    writer = None
    try:
        for chunk in chunks:
            if writer is None:
                writer = pq.ParquetWriter(tmp, chunk.schema, compression="zstd")
            writer.write_table(chunk, row_group_size=CHUNK)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def ensure(directory: Path, rows: int) -> dict[str, float | None]:
    """Write `people.parquet` and `visits.parquet` with `rows` rows each, unless present.
    Returns the seconds spent writing each (None when cached)."""
    directory.mkdir(parents=True, exist_ok=True)
    spent: dict[str, float | None] = {}
    for table, chunks in (("people", _people_chunks), ("visits", _visits_chunks)):
        path = directory / f"{table}.parquet"
        spent[table] = None
        if not path.exists():
            start = time.perf_counter()
            _write(path, chunks(rows))
            spent[table] = time.perf_counter() - start
    return spent


def register(directory: Path) -> dict[str, float | None]:
    """Register both tables in the catalog under `directory` (idempotent); seconds per table
    (None when the registration was already current and nothing was rebuilt)."""
    from sandbox.catalog import Catalog
    from sandbox.errors import DatasetNotFound
    from sandbox.policy import load_policy

    catalog = Catalog(directory)
    spent: dict[str, float | None] = {}
    for table in TABLES:
        try:
            before = catalog.get(table).manifest.get("registered_at")
        except DatasetNotFound:
            before = None
        start = time.perf_counter()
        policy_file = POLICIES / f"{table}.yaml"
        after = catalog.register(load_policy(policy_file), policy_file).manifest.get("registered_at")
        spent[table] = time.perf_counter() - start if before is None or after != before else None
    return spent


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-register", action="store_true", help="only write the Parquet files")
    args = parser.parse_args(argv)
    setup_file = args.out / "setup.json"
    setup = json.loads(setup_file.read_text()) if setup_file.exists() else {}
    for table, seconds in ensure(args.out, args.rows).items():  # keep the first build's times
        if seconds is not None:
            setup[f"write_{table}_seconds"] = seconds
    if not args.no_register:
        for table, seconds in register(args.out).items():
            if seconds is not None:
                setup[f"register_{table}_seconds"] = seconds
    setup_file.write_text(json.dumps(setup, indent=2))
    print(json.dumps(setup))
    return setup


if __name__ == "__main__":
    main()
