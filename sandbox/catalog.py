"""Registered datasets: connector + policy + managed, read-only storage.

Registration is where the expensive, data-independent-of-the-query work happens once:
- the source is snapshotted by its connector and checked against the policy;
- every row gets `__rank`, its position among its unit's rows ordered by a keyed hash of
  (server secret, row content), so per-query contribution bounding is the cheap filter
  `__rank <= max_rows` instead of a window over the whole table;
- facts the compiler may rely on are verified and recorded: the largest number of rows any unit
  has, and which dimensions are constant within a unit (grouping by them needs no max_groups pass);
- the managed `data.parquet` keeps every row with its rank; the portable engine artefact
  `engine.parquet` keeps only the rows bounding can ever keep (rank <= max_rows) with each
  measure clamped and quantized (`__q_<col>`), which is what every backend queries: DuckDB
  through `engine.duckdb`, built from it and attached read-only with the file system switched
  off; Spark reads it directly. Registration on Spark (engine/spark_registration.py) produces
  the same artefact bit for bit.

The listing shows schemas and policies, never rows.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from connectors import check_schema, get_connector
from sandbox.errors import DatasetNotFound, SchemaMismatch
from sandbox.policy import Policy, Role, load_policies
from sandbox.privacy.grid import clamp_bounds, clamped_sql, grid_step

if TYPE_CHECKING:
    from sandbox.engine.backend import BackendChoice

__all__ = ["ENGINE_ARTEFACT", "QUANTIZED_PREFIX", "RANK_COLUMN", "ROW_TEXT_ENCODING", "Catalog", "Dataset"]

RANK_COLUMN = "__rank"
QUANTIZED_PREFIX = "__q_"
ENGINE_ARTEFACT = "engine.parquet"
# How the text a row's keyed hash is taken of is built: DuckDB's CAST(row(...) AS VARCHAR).
# A registration on another engine builds the same text (sandbox/engine/spark_registration.py);
# changing it changes every rank, so it is versioned in the manifest.
ROW_TEXT_ENCODING = "duckdb-row-text-of-policy-types-1"
_MANIFEST_VERSION = 7
MAX_ROWS = 2**40  # with at most 2**20 grid steps per value, any sum fits in 64 bits


@dataclass(frozen=True)
class Dataset:
    """A registered dataset as the compiler and engine see it."""

    policy: Policy
    directory: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def parquet_path(self) -> Path:
        return self.directory / "data.parquet"

    @property
    def engine_path(self) -> Path:
        return self.directory / "engine.duckdb"

    @property
    def artefact_path(self) -> Path:
        """The portable engine artefact: the rows bounding can keep (rank <= max_rows), with the
        quantized columns; a file (DuckDB registration) or a directory of parts (Spark's)."""
        return self.directory / self.manifest.get("artefact", {}).get("file", ENGINE_ARTEFACT)

    @property
    def backend(self) -> str:
        """The backend that registered this dataset and serves its queries."""
        return str(self.manifest.get("backend", "duckdb"))

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def size_bound(self) -> int:
        """A public upper bound on the rows a query can read: the engine file's row count rounded
        up to a power of two at registration (older manifests: from all rows). The compiler's
        worst-case memory estimate uses it (compiler/work.py); the catalog shows it."""
        
        return int(self.manifest.get("size_class") or size_class(int(self.manifest.get("rows", 0))))

    def multiplicity(self, column: str) -> int:
        """Public datasets: the most rows sharing one value of `column` (what one private row
        joined on it can become); unknown: every row."""
        return int(self.manifest.get("multiplicity", {}).get(column, self.size_bound))

    @property
    def max_rows_per_unit(self) -> int:
        """Verified at registration; 0 for public datasets."""
        return int(self.manifest.get("max_rows_per_unit", 0))

    @property
    def prebounded(self) -> bool:
        """The engine file holds only rows with rank <= max_rows (see _build_engine_file)."""
        return bool(self.manifest.get("prebounded"))

    def quantized_step(self, column: str) -> float | None:
        """The grid step of the column's stored quantized value, if registration stored one."""
        return self.manifest.get("quantized", {}).get(column)

    @property
    def constant_dimensions(self) -> frozenset[str]:
        """Columns the policy declares constant per unit (verified at registration)."""
        return frozenset(self.manifest.get("constant_dimensions", ()))

    @property
    def non_null_columns(self) -> frozenset[str]:
        """Columns the policy declares not nullable (verified at registration; empty for a
        dataset registered before the check, which is the safe answer)."""
        return frozenset(self.manifest.get("non_null", ()))

    def describe(self) -> dict[str, Any]:
        """Schema and policy for the catalog listing: never rows, never data statistics."""
        return {
            "name": self.name,
            "title": self.policy.title,
            "description": self.policy.description,
            "owner": self.policy.owner,
            "domain": self.policy.domain,
            "public": self.policy.public,
            "privacy_unit": self.policy.privacy_unit.model_dump() if self.policy.privacy_unit else None,
            "columns": {
                name: column.model_dump(exclude_none=True)
                for name, column in self.policy.columns.items()
                if column.role is not Role.hidden
            },
            "limits": self.policy.limits.model_dump(),
            "default_delta": self.policy.default_delta,
            "size_class": self.size_bound,  # public: what queries are planned against, not a count
            "registered_at": self.manifest.get("registered_at"),
        }


class Catalog:
    """The datasets under one data directory."""

    def __init__(self, data_dir: str | Path, *, backends: BackendChoice | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.datasets_dir = self.data_dir / "datasets"
        self.datasets_dir.mkdir(parents=True, exist_ok=True)
        self._secret = _load_or_create_secret(self.data_dir / "secret.key")
        self._cache: dict[str, Dataset] = {}
        self._backends = backends

    @property
    def backends(self) -> BackendChoice:
        """Which backend registers and serves each dataset: given, or from the settings
        (SANDBOX_BACKEND, SANDBOX_DATASET_BACKENDS, SANDBOX_SPARK_REMOTE)."""
        if self._backends is None:
            from sandbox.engine.backend import BackendChoice
            from sandbox.settings import Settings

            self._backends = BackendChoice.from_settings(Settings(), data_dir=self.data_dir)
        return self._backends

    # -- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(p.name for p in self.datasets_dir.iterdir() if (p / "manifest.json").exists())

    def get(self, name: str) -> Dataset:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        directory = self.datasets_dir / name
        manifest_file = directory / "manifest.json"
        if not name.isidentifier() or not manifest_file.exists():
            names = self.names()
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DatasetNotFound(
                f"No dataset named {name!r}.{hint} Available: {', '.join(names) or '(none)'}.",
                dataset=name,
                suggestion=close[0] if close else None,
            )
        manifest = json.loads(manifest_file.read_text())
        dataset = Dataset(Policy.model_validate(manifest["policy"]), directory, manifest)
        self._cache[name] = dataset
        return dataset

    def list(self) -> list[Dataset]:
        return [self.get(name) for name in self.names()]

    # -- registration ---------------------------------------------------------------------
    def register_directory(self, policies_dir: str | Path) -> list[Dataset]:
        return [self.register(policy, file) for policy, file in load_policies(policies_dir).values()]

    def register(self, policy: Policy, policy_file: str | Path | None = None) -> Dataset:
        """Snapshot, check, bound and store one dataset. Idempotent: an unchanged source and
        policy is only re-checked; anything else is rebuilt and swapped in atomically."""
        policy_dir = Path(policy_file).resolve().parent if policy_file else None
        origin = str(policy_file or policy.name)
        location = policy.resolve_location(policy_dir, self.data_dir)
        connector = get_connector(policy.source.kind)
        target = self.datasets_dir / policy.name
        with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=".register-") as tmp:
            work = Path(tmp)
            snapshot = connector.snapshot(policy, location, work / "snapshot")
            check_schema(policy, snapshot.schema, origin)
            fingerprint = self._fingerprint(policy, snapshot.parquet)
            existing = target / "manifest.json"
            if existing.exists() and json.loads(existing.read_text()).get("fingerprint") == fingerprint:
                self._cache.pop(policy.name, None)
                return self.get(policy.name)
            staged = work / "staged"
            staged.mkdir()
            backend = self.backends.of(policy.name)
            if backend == "spark":
                manifest = self._ingest_on_spark(policy, snapshot.parquet, staged)
            else:
                manifest = self._ingest(policy, snapshot.parquet, staged, origin, spill=work / "spill")
            manifest["fingerprint"] = fingerprint
            manifest["backend"] = backend
            (staged / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
            for file in staged.iterdir():
                if file.is_file():
                    file.chmod(stat.S_IRUSR | stat.S_IRGRP)
            if target.exists():
                _make_writable(target)
                shutil.rmtree(target)
            os.replace(staged, target)
        self._cache.pop(policy.name, None)
        return self.get(policy.name)

    def _ingest_on_spark(self, policy: Policy, source: Path, out: Path) -> dict[str, Any]:
        """The same facts and engine artefact, computed by Spark jobs (engine/spark_registration.py)."""
        from sandbox.engine.spark_backend import connect
        from sandbox.engine.spark_registration import register_on_spark

        options = self.backends.spark
        assert options is not None  # BackendChoice.check: a Spark backend has a server
        session = connect(options)
        try:
            facts = register_on_spark(session, policy, source, out, options, self._secret)
        finally:
            session.stop()
        return {"version": _MANIFEST_VERSION, **facts}

    def _fingerprint(self, policy: Policy, source: Path) -> str:
        digest = hashlib.sha256()
        digest.update(str(_MANIFEST_VERSION).encode())
        digest.update(self.backends.of(policy.name).encode())
        digest.update(policy.model_dump_json().encode())
        digest.update(hashlib.sha256(self._secret).digest())
        files = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
        for file in files:  # content, not timestamps: CSV/PostgreSQL snapshots are new files
            digest.update(file.relative_to(source).as_posix().encode() if source.is_dir() else b"")
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def _ingest(self, policy: Policy, source: Path, out: Path, origin: str, *, spill: Path) -> dict[str, Any]:
        pattern = str(source / "**" / "*.parquet") if source.is_dir() else str(source)
        columns = ", ".join(f"{_typed(name, column.type)} AS {_quote(name)}" for name, column in policy.columns.items())
        parquet = out / "data.parquet"
        # Sorting 100M rows by their keyed hash spills: into the registration's own scratch
        # directory (removed with it), not DuckDB's default `.tmp` in the working directory.
        con = duckdb.connect(
            config={"threads": str(os.cpu_count() or 2), "memory_limit": "2GB", "temp_directory": str(spill)}
        )
        try:
            # Every column as the policy types it: the rank hashes the registered values, not however
            # the source happened to store them (a FLOAT source of a DOUBLE column prints otherwise).
            con.execute(
                f"CREATE TEMP VIEW src AS SELECT {columns} FROM read_parquet('{_sql_path(Path(pattern))}')"
            )
            facts: dict[str, Any] = {}
            if policy.public:
                select = "SELECT * FROM src"
            else:
                unit = _quote(policy.unit)
                # Rows without a unit are treated as one unit, as SQL groups NULLs: they are
                # bounded together, which is never weaker than bounding them separately.
                facts["null_unit_rows"] = con.execute(f"SELECT count(*) FROM src WHERE {unit} IS NULL").fetchone()[0]
                # The keyed hash of (secret, row content): uniform, reproducible, unpredictable
                # without the secret, and independent of other units' rows, so removing one
                # unit never changes which rows of another unit are kept. Identical rows tie,
                # and it does not matter which of them is kept.
                content = ", ".join(_quote(name) for name in policy.columns)
                select = (
                    f"SELECT *, CAST(row_number() OVER (PARTITION BY {unit} ORDER BY "
                    f"sha256(concat($secret, CAST(row({content}) AS VARCHAR)))) AS INTEGER) "
                    f"AS {RANK_COLUMN} FROM src"
                )
            con.execute(
                f"COPY ({select}) TO '{_sql_path(parquet)}' (FORMAT parquet, COMPRESSION zstd)",
                {"secret": self._secret.hex()} if not policy.public else {},
            )
            rows = con.execute(f"SELECT count(*) FROM '{_sql_path(parquet)}'").fetchone()[0]
            facts["non_null"] = self._check_non_null(con, policy, parquet)
            if not policy.public:
                facts |= self._unit_facts(con, policy, parquet)
            else:  # public data: how many rows share a value, which bounds what a join can multiply
                counts = ", ".join(
                    f"(SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM '{_sql_path(parquet)}' "
                    f"GROUP BY {_quote(name)}))"
                    for name in policy.columns
                )
                row = con.execute(f"SELECT {counts}").fetchone()
                facts["multiplicity"] = dict(zip(policy.columns, (int(n) for n in row), strict=True))
            facts |= self._build_engine_file(policy, parquet, out / "engine.duckdb")
        finally:
            con.close()
        return {
            "version": _MANIFEST_VERSION,
            "name": policy.name,
            "policy": policy.model_dump(mode="json"),
            "rows": rows,
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **facts,
        }

    @staticmethod
    def _build_engine_file(policy: Policy, parquet: Path, engine: Path) -> dict[str, Any]:
        """The local engine's copy: only the rows bounding can ever keep (rank <= max_rows, fixed
        by the policy), and each aggregable column's clamped value on the sum grid, so a query's
        bounded SUM is a plain integer SUM over a stored column."""
        quantized: dict[str, float] = {}
        extra = []
        for name, column in policy.columns.items():
            if column.aggregable:
                lo, hi = clamp_bounds(column)
                step = grid_step(column)
                quantized[name] = step
                extra.append(
                    f"CAST(ROUND({clamped_sql(_quote(name), lo, hi)} / {step!r}) AS INTEGER)"
                    f" AS {_quote(QUANTIZED_PREFIX + name)}"
                )
        select = ", ".join(["*", *extra])
        where = f" WHERE {RANK_COLUMN} <= {policy.privacy_unit.max_rows}" if not policy.public else ""
        artefact = engine.with_name(ENGINE_ARTEFACT)
        db = duckdb.connect(str(engine))
        try:
            db.execute(
                f"COPY (SELECT {select} FROM '{_sql_path(parquet)}'{where}) TO '{_sql_path(artefact)}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            db.execute(f"CREATE TABLE data AS SELECT * FROM '{_sql_path(artefact)}'")
            engine_rows = db.execute("SELECT count(*) FROM data").fetchone()[0]
        finally:
            db.close()
        return {
            "quantized": quantized,
            "prebounded": not policy.public,
            "size_class": size_class(engine_rows),
            "engine_rows": engine_rows,
            "artefact": {"file": ENGINE_ARTEFACT, "row_text": ROW_TEXT_ENCODING, "built_by": "duckdb"},
        }

    @staticmethod
    def _check_non_null(con: duckdb.DuckDBPyConnection, policy: Policy, parquet: Path) -> list[str]:
        """Columns not declared `nullable` must hold no NULL: the compiler then counts COUNT(x)
        as COUNT(*) (one noisy count instead of two). Declared, verified, never inferred: the
        noise plan must not depend on the data."""
        declared = [n for n, c in policy.columns.items() if not c.nullable and c.role is not Role.identifier]
        if not declared:
            return []
        counts = ", ".join(f"count(*) FILTER (WHERE {_quote(n)} IS NULL)" for n in declared)
        nulls = con.execute(f"SELECT {counts} FROM '{_sql_path(parquet)}'").fetchone()
        return verify_non_null(policy, dict(zip(declared, nulls, strict=True)))

    @staticmethod
    def _unit_facts(con: duckdb.DuckDBPyConnection, policy: Policy, parquet: Path) -> dict[str, Any]:
        """Verified facts about units that let the compiler skip work without weakening bounds."""
        unit = _quote(policy.unit)
        dims = [n for n, c in policy.columns.items() if c.role is Role.dimension]
        max_rows, units, rows_total = con.execute(
            f"SELECT max(n), count(*), sum(n) FROM (SELECT count(*) AS n FROM '{_sql_path(parquet)}' GROUP BY {unit})"
        ).fetchone()
        constant = list(dims)
        if dims and max_rows and max_rows > 1:
            per_unit = ", ".join(
                f"count(DISTINCT {_quote(d)}) + max(CASE WHEN {_quote(d)} IS NULL THEN 1 ELSE 0 END) AS {_quote(d)}"
                for d in dims
            )
            worst = ", ".join(f"max({_quote(d)})" for d in dims)
            row = con.execute(
                f"SELECT {worst} FROM (SELECT {per_unit} FROM '{_sql_path(parquet)}' GROUP BY {unit})"
            ).fetchone()
            constant = [d for d, n in zip(dims, row, strict=True) if n <= 1]
        return verify_units(policy, max_rows=max_rows, units=units, rows_total=rows_total, constant=constant)


def verify_non_null(policy: Policy, nulls: dict[str, int]) -> list[str]:
    """Columns not declared nullable (with their NULL counts, however counted) must have none."""
    for name, n in nulls.items():
        if n:
            raise SchemaMismatch(
                f"{policy.name}: column {name!r} has {n} NULL value(s) but is not declared nullable; "
                f"add `nullable: true` to it in the policy, or fix the source",
                dataset=policy.name,
                column=name,
            )
    return list(nulls)


def verify_units(
    policy: Policy, *, max_rows: int | None, units: int | None, rows_total: int | None, constant: list[str]
) -> dict[str, Any]:
    """The unit facts the compiler relies on, from counts however computed (DuckDB or Spark):
    refuses a broken constant_per_unit declaration or too many rows."""
    declared = [n for n, c in policy.columns.items() if c.constant_per_unit]
    broken = [n for n in declared if n not in constant]
    if broken:
        raise SchemaMismatch(
            f"{policy.name}: column {broken[0]!r} is declared constant_per_unit, but some {policy.unit} has "
            "several values; remove the declaration or fix the source",
            dataset=policy.name,
            column=broken[0],
        )
    if (rows_total or 0) >= MAX_ROWS:
        raise SchemaMismatch(
            f"{policy.name}: {rows_total} rows exceed the supported {MAX_ROWS}; split it", dataset=policy.name
        )
    return {"units": units or 0, "max_rows_per_unit": max_rows or 0, "constant_dimensions": declared}


def size_class(rows: int) -> int:
    """The public size bound registration publishes: the next power of two (at least 1024), so
    the compiler's worst-case estimates depend on a coarse class fixed at registration, never on
    the current count."""
    return max(1024, 2 ** math.ceil(math.log2(max(rows, 1))))


def _typed(name: str, type_: str) -> str:
    """A source column as the policy types it; every NaN as the one positive NaN, so neither its
    text in the ranked row nor its bits depend on the engine or the source's NaN payloads."""
    value = f"CAST({_quote(name)} AS {type_})"
    if type_ in ("DOUBLE", "FLOAT"):
        return f"CASE WHEN isnan({value}) THEN CAST('nan' AS {type_}) ELSE {value} END"
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _make_writable(directory: Path) -> None:
    for file in directory.iterdir():
        if file.is_file():
            file.chmod(stat.S_IRUSR | stat.S_IWUSR)


def _load_or_create_secret(path: Path) -> bytes:
    """The bounding key: never leaves the server; changing it re-ranks every dataset."""
    if path.exists():
        return path.read_bytes()
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret
