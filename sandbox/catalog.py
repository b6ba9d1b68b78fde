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
from sandbox import certificates
from sandbox.artefact import (
    ENGINE_ARTEFACT,
    MAX_ROWS,
    QUANTIZED_PREFIX,
    RANK_COLUMN,
    ROW_TEXT_ENCODING,
    size_class,
    verify_non_null,
    verify_out_of_range,
    verify_units,
)
from sandbox.errors import DatasetNotFound
from sandbox.metadata import advice, release_metadata
from sandbox.policy import Policy, Role, load_policies
from sandbox.privacy.grid import clamp_bounds, clamped_sql, grid_step
from sandbox.private_files import create_once

if TYPE_CHECKING:
    from sandbox.engine.backend import BackendChoice

# The artefact's layout lives in sandbox/artefact.py; its names stay importable from here.
__all__ = [
    "ENGINE_ARTEFACT",
    "MAX_ROWS",
    "QUANTIZED_PREFIX",
    "RANK_COLUMN",
    "ROW_TEXT_ENCODING",
    "Catalog",
    "Dataset",
    "size_class",
]

_MANIFEST_VERSION = 10



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

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The DP statistics released at registration (sandbox/metadata.py), if any."""
        return self.manifest.get("metadata")

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
        """Schema and policy for the catalog listing: never rows; of the data, only the public size
        class and the DP statistics released from the metadata allowance."""
        return {
            "name": self.name,
            "title": self.policy.title,
            "description": self.policy.description,
            "title_zh": self.policy.title_zh,
            "description_zh": self.policy.description_zh,
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
            "metadata_epsilon": self.policy.metadata_epsilon,  # spent once, at registration
            "metadata": self.metadata,  # the noisy statistics themselves (public once released)
            "warnings": self.manifest.get("warnings", []),  # for the data steward (metadata.advice)
            "registered_at": self.manifest.get("registered_at"),
            "certificate": certificates.latest(self.directory.parent.parent, self.name),  # signed, public
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
        self.generation = 0  # counts registrations: plans compiled before one are compiled afresh (compiler/cache.py)

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

    def scopes(self) -> dict[str, set[str]]:
        """What an agreement may cover: each dataset that is not public, with its queryable columns."""
        return {d.name: set(d.policy.queryable()) for d in self.list() if not d.policy.public}

    def owners(self) -> dict[str, str]:
        """Each dataset that is not public, with the owner its policy names (whose data steward
        decides its part of every agreement: sandbox/stewards.py)."""
        return {d.name: d.policy.owner for d in self.list() if not d.policy.public}

    def titled(self, text: str | None) -> list[str]:
        """The datasets whose title, English or Chinese, contains `text` (ignoring case): a search
        for 居民 finds what concerns `residents`."""
        needle = (text or "").casefold()
        return [d.name for d in self.list() if needle and any(
            needle in (title or "").casefold() for title in (d.policy.title, d.policy.title_zh))]

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
                self._forget(policy.name)
                return self._certified(policy.name)
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
        self._forget(policy.name)
        return self._certified(policy.name)

    def _forget(self, name: str) -> None:
        self._cache.pop(name, None)
        self.generation += 1

    def _certified(self, name: str) -> Dataset:
        """The registered dataset, with a signed certificate of this registration (a new version
        when its policy or snapshot changed; sandbox/certificates.py)."""
        dataset = self.get(name)
        certificates.issue(self.data_dir, dataset)
        return dataset

    def _ingest_on_spark(self, policy: Policy, source: Path, out: Path) -> dict[str, Any]:
        """The same facts and engine artefact, computed by Spark jobs (engine/spark_registration.py)."""
        from sandbox.engine.spark_registration import register_on_spark
        from sandbox.engine.spark_session import connect

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
        columns = ", ".join(
            f"{_stored(name, column.type)} AS {_quote(name)}" for name, column in policy.columns.items()
        )
        parquet = out / "data.parquet"
        # Sorting 100M rows by their keyed hash spills: into the registration's own scratch
        # directory (removed with it), not DuckDB's default `.tmp` in the working directory.
        con = duckdb.connect(
            config={"threads": str(os.cpu_count() or 2), "memory_limit": "2GB", "temp_directory": str(spill)}
        )
        try:
            con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM read_parquet('{_sql_path(Path(pattern))}')")
            facts: dict[str, Any] = {"out_of_range": self._out_of_range(con, policy)}
            # Every column as stored: the rank hashes the registered values, not however the source
            # happened to hold them (a FLOAT source of a DOUBLE column prints otherwise).
            con.execute(f"CREATE TEMP VIEW src AS SELECT {columns} FROM raw")
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
            con.execute(f"CREATE TEMP VIEW ranked AS SELECT * FROM '{_sql_path(parquet)}'")
            facts["metadata"] = release_metadata(policy, lambda sql: con.execute(sql).fetchall())  # DP
            facts["warnings"] = advice(policy, facts["metadata"])
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
    def _out_of_range(con: duckdb.DuckDBPyConnection, policy: Policy) -> dict[str, int]:
        """Dates and timestamps outside 0001-01-01 .. 9999-12-31 (DuckDB also has years in the
        millions, BC dates and +-infinity) are stored as NULL: there DuckDB's date functions
        fail even under TRY (its statistics propagation evaluates them on a column's min and
        max), and no other engine can represent them. How many is recorded; a column declared
        not nullable refuses them (verify_out_of_range)."""
        counts: dict[str, int] = {}
        for name, column in policy.columns.items():
            if column.type not in ("DATE", "TIMESTAMP"):
                continue
            raw = f"CAST({_quote(name)} AS {column.type})"
            counts[name] = con.execute(
                f"SELECT count(*) FROM raw WHERE {raw} IS NOT NULL AND {_stored(name, column.type)} IS NULL"
            ).fetchone()[0]
        return verify_out_of_range(policy, counts)

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


def _stored(name: str, type_: str) -> str:
    """A source column as the managed copy stores it: cast to its policy type; every NaN as the
    one positive NaN, so neither its text in the ranked row nor its bits depend on the engine or
    the source's NaN payloads; dates and timestamps outside the range every engine shares set to
    NULL (see _out_of_range). Spark registration mirrors it (spark_registration._stored)."""
    value = f"CAST({_quote(name)} AS {type_})"
    if type_ in ("DOUBLE", "FLOAT"):
        return f"CASE WHEN isnan({value}) THEN CAST('nan' AS {type_}) ELSE {value} END"
    if type_ == "DATE":
        return f"CASE WHEN {value} BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN {value} END"
    if type_ == "TIMESTAMP":
        return (
            f"CASE WHEN {value} BETWEEN TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '9999-12-31 23:59:59.999999' "
            f"THEN {value} END"
        )
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
    """The bounding key: never leaves the server; changing it re-ranks every dataset. Servers
    starting together on a new data directory agree on one (private_files.create_once)."""
    return create_once(path, lambda: os.urandom(32))
