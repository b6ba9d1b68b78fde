"""Registration on Spark produces the same engine artefact and the same verified facts as
registration on DuckDB, bit for bit: the demo city, and a stress set of values that break naive
row text (NaN and infinities, random-bit doubles and floats, text that needs quoting, NULL units,
timestamps), with the Spark server's JVM in a non-UTC zone (tests/support/spark.py)."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sandbox.catalog import Catalog
from sandbox.demo import build_demo
from sandbox.engine.backend import BackendChoice, SparkOptions
from sandbox.engine.row_text import double_text
from sandbox.engine.spark_registration import _metadata_query
from sandbox.errors import SchemaMismatch
from sandbox.metadata import advice, exact_counts
from sandbox.policy import Policy, load_policies
from tests.conftest import POLICIES

_VOLATILE = {"registered_at", "fingerprint", "backend", "artefact", "metadata", "warnings"}


def _pair(root: Path, options: SparkOptions) -> tuple[Catalog, Catalog]:
    """Two catalogs with the same server secret, one registering on DuckDB, one on Spark."""
    duck = Catalog(root / "duckdb", backends=BackendChoice())
    (root / "spark").mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "duckdb" / "secret.key", root / "spark" / "secret.key")
    spark = Catalog(root / "spark", backends=BackendChoice(default="spark", spark=options))
    return duck, spark


def _rows(path: Path) -> list[tuple]:
    """Every row of an artefact (a file or a directory of parts), doubles by their bits."""
    pattern = str(path / "*.parquet") if path.is_dir() else str(path)
    con = duckdb.connect()
    try:
        cursor = con.execute(f"SELECT * FROM read_parquet('{pattern}')")
        names = [d[0] for d in cursor.description]
        rows = [tuple(_bits(v) for v in row) for row in cursor.fetchall()]
    finally:
        con.close()
    return [tuple(names), *sorted(rows, key=repr)]


def _bits(value: Any) -> Any:
    return ("double", struct.pack("<d", value).hex()) if isinstance(value, float) else value


def _same_registration(duck: Catalog, spark: Catalog, policy: Policy, session: Any) -> None:
    a, b = duck.register(policy), spark.register(policy)
    assert b.backend == "spark" and b.manifest["artefact"]["built_by"] == "spark"
    assert a.manifest["artefact"]["row_text"] == b.manifest["artefact"]["row_text"]
    facts = lambda d: {k: v for k, v in d.manifest.items() if k not in _VOLATILE}  # noqa: E731
    assert facts(b) == facts(a)
    assert _rows(b.artefact_path) == _rows(a.artefact_path)
    assert len(_rows(a.artefact_path)) > 1
    _same_metadata(a, b, policy, session)


def _same_metadata(a: Any, b: Any, policy: Policy, session: Any) -> None:
    """The DP metadata is noisy, so the two releases differ in their noisy counts only: the same
    allowance, bins, bounds and scales, and the exact histograms behind them, counted by each
    engine from its own ranked rows, are equal."""

    def shape(metadata: dict | None) -> Any:
        if metadata is None:
            return None
        units = metadata["rows_per_unit"]
        return {
            "epsilon": metadata["epsilon"],
            "rows_per_unit": {**units, "units": len(units["units"])},
            "columns": {n: {**c, "counts": len(c["counts"])} for n, c in metadata["columns"].items()},
        }

    assert shape(b.metadata) == shape(a.metadata)
    assert b.manifest["warnings"] == advice(policy, b.metadata)
    if a.metadata is None:
        return
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW ranked AS SELECT * FROM read_parquet('{a.directory / 'data.parquet'}')")
        on_duckdb = exact_counts(policy, lambda sql: con.execute(sql).fetchall())
    finally:
        con.close()
    on_spark = exact_counts(policy, _metadata_query(session, session.read.parquet(str(b.directory / "data.parquet"))))
    assert on_spark == on_duckdb
    assert sum(on_duckdb["rows_per_unit"]) > 0


@pytest.fixture(scope="module")
def demo_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registration")
    build_demo(root / "duckdb" / "demo", scale=1500)
    shutil.copytree(root / "duckdb" / "demo", root / "spark" / "demo")
    return root


DEMO = ["residents", "social_insurance", "enterprises", "medical_visits", "district_reference"]


@pytest.mark.parametrize("name", DEMO)
def test_demo_registers_identically(
    name: str, demo_sources: Path, spark_options: SparkOptions, spark_session: Any
) -> None:
    duck, spark = _pair(demo_sources, spark_options)
    policy, _ = load_policies(POLICIES)[name]  # sources at {data_dir}/demo/, built beside each catalog
    _same_registration(duck, spark, policy, spark_session)


STRESS_POLICY = """
name: stress
title: Values that break naive row text
description: Registration stress set (tests only).
owner: tests
source: {kind: parquet, location: "{data_dir}/stress.parquet"}
privacy_unit: {column: uid, max_rows: 3, max_groups: 2}
columns:
  uid: {role: identifier, type: BIGINT, nullable: true}
  label: {role: dimension, type: VARCHAR, nullable: true}
  seen: {role: dimension, type: TIMESTAMP, nullable: true}
  day: {role: dimension, type: DATE, nullable: true}
  flag: {role: dimension, type: BOOLEAN, nullable: true}
  tiny: {role: dimension, type: TINYINT, nullable: true}
  x: {role: measure, type: DOUBLE, nullable: true, bounds: [-1000, 1000]}
  f: {role: measure, type: DOUBLE, nullable: true, bounds: [0, 1]}
  n: {role: measure, type: INTEGER, nullable: true, bounds: [0, 100]}
"""
TEXT = ["", " ", "a b", " lead", "trail ", "O'Brien", 'say "hi"', "a,b", "(x)", "[x]", "{x}", "k:v", "a=b",
        "back\\slash", "NULL", "null", "Null", "tab\there", "\ttab", "new\nline", "line\n", "厦门", "ß", "\u00a0nbsp",
        "-", "1", "true", "'", "\\", "it's \\'quoted\\'"]  # fmt: skip


def _stress_rows(rng: random.Random, rows: int) -> list[tuple]:
    out = []
    for i in range(rows):
        bits = rng.getrandbits(64)
        x = struct.unpack("<d", struct.pack("<Q", bits))[0]
        x = rng.choice([x, x, float("nan"), -float("nan"), float("inf"), -float("inf"), -0.0, 0.1, 1e16, 5e-324, 2.5])
        f = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        out.append((
            None if i % 23 == 0 else rng.randint(1, rows // 3),
            rng.choice([*TEXT, None]),
            rng.choice([None, f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 0{rng.randint(0, 9)}:30:00",
                        "2024-02-29 12:34:56.789", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999",
                        "1969-12-31 23:59:59.5"]),
            rng.choice([None, "2024-01-31", "0001-01-01", "9999-12-31", "1970-01-01", "1582-10-10"]),
            rng.choice([None, True, False]),
            rng.choice([None, -128, 127, 0]),
            x,
            rng.choice([f, f, None, float("nan")]),
            rng.choice([None, -5, 0, 50, 100, 2**31 - 1]),
        ))  # fmt: skip
    # Dates and timestamps outside the years both engines share: stored as NULL by both.
    outside = [("infinity", "infinity"), ("-infinity", "-infinity"), ("10000-01-01 00:00:00", "10000-01-01"),
               ("0000-12-31 23:59:59.999999", "0001-12-31 (BC)")]  # fmt: skip
    out += [(i + 1, "x", seen, day, None, None, 1.0, 0.5, 1) for i, (seen, day) in enumerate(outside)]
    return out


def _write_stress(path: Path, rows: list[tuple]) -> None:
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE t (uid BIGINT, label VARCHAR, seen TIMESTAMP, day DATE, flag BOOLEAN, tiny TINYINT, "
            "x DOUBLE, f FLOAT, n INTEGER)"
        )
        con.executemany("INSERT INTO t VALUES (?, ?, CAST(? AS TIMESTAMP), CAST(? AS DATE), ?, ?, ?, ?, ?)", rows)
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    finally:
        con.close()


def test_stress_set_registers_identically(tmp_path: Path, spark_options: SparkOptions, spark_session: Any) -> None:
    import yaml

    rows = _stress_rows(random.Random(20261204), 600)
    for side in ("duckdb", "spark"):
        (tmp_path / side).mkdir()
        _write_stress(tmp_path / side / "stress.parquet", rows)
    duck, spark = _pair(tmp_path, spark_options)
    policy = Policy.model_validate(yaml.safe_load(STRESS_POLICY))
    _same_registration(duck, spark, policy, spark_session)
    assert duck.get("stress").manifest["out_of_range"] == {"seen": 4, "day": 4}  # see _stress_rows


def test_dates_outside_the_shared_years_refused_if_not_nullable(tmp_path: Path, spark_options: SparkOptions) -> None:
    """Both registrations store them as NULL; a column declared not nullable refuses them."""
    import yaml

    rows = [(1, "a", None, "infinity", None, None, 1.0, 0.5, 1)]
    for side in ("duckdb", "spark"):
        (tmp_path / side).mkdir()
        _write_stress(tmp_path / side / "stress.parquet", rows)
    policy = yaml.safe_load(STRESS_POLICY)
    policy["columns"]["day"]["nullable"] = False
    for catalog in _pair(tmp_path, spark_options):
        with pytest.raises(SchemaMismatch, match="outside 0001-01-01 .. 9999-12-31"):
            catalog.register(Policy.model_validate(policy))


def test_spark_refuses_float_columns(tmp_path: Path, spark_options: SparkOptions) -> None:
    import yaml

    (tmp_path / "spark").mkdir()
    (tmp_path / "duckdb").mkdir()
    _write_stress(tmp_path / "spark" / "stress.parquet", [(1, "a", None, None, None, None, 1.0, 0.5, 1)])
    _, spark = _pair(tmp_path, spark_options)
    policy = yaml.safe_load(STRESS_POLICY)
    policy["columns"]["f"]["type"] = "FLOAT"
    with pytest.raises(SchemaMismatch, match="declare it `type: DOUBLE`"):
        spark.register(Policy.model_validate(policy))


def test_row_text_of_doubles_is_duckdbs() -> None:
    """The UDF's formatting against DuckDB's own, on random bits (no Spark needed)."""
    rng = random.Random(7)
    doubles = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(20000)]
    doubles += [0.0, -0.0, 1e16, 1e15, 1e-4, 1e-5, 5e-324, float("inf"), -float("inf"), float("nan"), -float("nan")]
    doubles += [123456789012345.625, 2.0**53 + 2, 1.7976931348623157e308]
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE t (i INTEGER, v DOUBLE)")
        con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(doubles)))
        printed = dict(con.execute("SELECT i, CAST(row(v) AS VARCHAR)[2:-3] FROM t").fetchall())
    finally:
        con.close()
    wrong = [(printed[i], double_text(v)) for i, v in enumerate(doubles) if printed[i] != double_text(v)]
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]}"
    assert {"nan", "-nan"} <= set(printed.values())  # the sign of NaN shows in DuckDB's text
