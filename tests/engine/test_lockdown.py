"""The DuckDB lock-down, attacked with raw SQL sent straight through the worker pool.

No compiler is involved: every statement here reaches DuckDB exactly as written, so these
tests show what the isolation layer alone refuses. Each refusal is checked for its DuckDB
error class, so a statement that fails for a boring reason (a typo) does not pass as refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import WorkerLimits, WorkerPool
from sandbox.errors import QueryFailed
from tests.engine import tasks

PERMISSION = "PermissionException"  # external access / the local file system is off
LOCKED = "InvalidInputException"  # locked configuration, or a write to a read-only database
READ_ONLY = "InvalidInputException"

# (statement, expected DuckDB error class). {data} is the attached file, {dir} its folder.
REFUSED = [
    ("SELECT * FROM read_csv('/etc/passwd')", PERMISSION),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", PERMISSION),
    ("SELECT * FROM sniff_csv('/etc/passwd')", PERMISSION),
    ("SELECT * FROM '/etc/passwd'", "CatalogException"),  # no replacement scan of paths
    ("SELECT * FROM read_parquet('{data}')", PERMISSION),
    ("SELECT * FROM parquet_metadata('{data}')", PERMISSION),
    ("SELECT * FROM read_json('{data}')", PERMISSION),
    ("SELECT * FROM read_blob('{data}')", PERMISSION),
    ("SELECT * FROM read_text('{data}')", PERMISSION),
    ("SELECT * FROM read_duckdb('{data}')", PERMISSION),
    ("SELECT * FROM glob('/*')", PERMISSION),
    ("SELECT * FROM read_csv('https://example.com/x.csv')", PERMISSION),
    ("COPY (SELECT 1) TO '{dir}/x.csv'", PERMISSION),
    ("COPY residents.data TO '{dir}/x.csv'", PERMISSION),
    ("COPY residents.data FROM '/etc/passwd'", PERMISSION),
    ("EXPORT DATABASE '{dir}/export'", PERMISSION),
    ("IMPORT DATABASE '{dir}'", PERMISSION),
    ("ATTACH '{dir}/new.duckdb' AS new", PERMISSION),
    ("ATTACH '{data}' AS again (READ_WRITE)", PERMISSION),
    ("DETACH residents; ATTACH '{data}' AS residents", PERMISSION),
    ("INSTALL httpfs", PERMISSION),
    ("FORCE INSTALL httpfs", PERMISSION),
    ("LOAD httpfs", PERMISSION),
    ("LOAD '{dir}/evil.duckdb_extension'", PERMISSION),
    ("SET threads = 64", LOCKED),
    ("RESET threads", LOCKED),
    ("SET memory_limit = '100GB'", LOCKED),
    ("RESET memory_limit", LOCKED),
    ("SET enable_external_access = true", LOCKED),
    ("RESET enable_external_access", LOCKED),
    ("SET lock_configuration = false", LOCKED),
    ("RESET lock_configuration", LOCKED),
    ("SET disabled_filesystems = ''", LOCKED),
    ("RESET disabled_filesystems", LOCKED),
    ("SET GLOBAL threads = 64", LOCKED),
    ("PRAGMA threads = 64", LOCKED),
    ("SET allowed_paths = ['/etc/passwd']", LOCKED),
    ("SET allowed_directories = ['/']", LOCKED),
    ("SET temp_directory = '{dir}'", LOCKED),
    ("SET profiling_output = '{dir}/profile.json'", LOCKED),
    ("SET log_query_path = '{dir}/queries.log'", LOCKED),
    ("SET access_mode = 'read_write'", LOCKED),
    ("CREATE TABLE residents.x (a INTEGER)", READ_ONLY),
    ("INSERT INTO residents.data SELECT * FROM residents.data", READ_ONLY),
    ("UPDATE residents.data SET income = 0", READ_ONLY),
    ("DELETE FROM residents.data", READ_ONLY),
    ("DROP TABLE residents.data", READ_ONLY),
    ("ALTER TABLE residents.data ADD COLUMN z INTEGER", READ_ONLY),
    ("WITH x AS (DELETE FROM residents.main.data RETURNING *) SELECT count(*) FROM x", READ_ONLY),
    ("WITH x AS (UPDATE residents.data SET income = 0 RETURNING *) SELECT 1 FROM x", READ_ONLY),
]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "residents.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE data AS SELECT range AS person_id, range % 6 AS district,"
            " (range * 37) % 100 AS income FROM range(1000)"
        )
    return path


@pytest.fixture(scope="module")
def attach(data_file: Path) -> dict[str, Path]:
    return {"residents": data_file}


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    with WorkerPool(2, WorkerLimits(wall_seconds=20)) as pool:
        yield pool


def _sql(template: str, data_file: Path) -> str:
    return template.format(data=data_file, dir=data_file.parent)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_aggregate_on_attached_data_works(pool: WorkerPool, attach: dict[str, Path]) -> None:
    rows = pool.run(
        tasks.run_raw_sql,
        "SELECT district, count(*), sum(income) FROM residents.data GROUP BY 1 ORDER BY 1",
        attach,
    )
    assert [r[1] for r in rows] == [167, 167, 167, 167, 166, 166]


@pytest.mark.parametrize(("template", "error"), REFUSED, ids=[s for s, _ in REFUSED])
def test_statement_is_refused(
    pool: WorkerPool, attach: dict[str, Path], data_file: Path, template: str, error: str
) -> None:
    assert pool.run(tasks.refusal, _sql(template, data_file), attach) == error


def test_refusals_leave_the_data_file_untouched(
    pool: WorkerPool, attach: dict[str, Path], data_file: Path
) -> None:
    before = _sha256(data_file)
    for template, _ in REFUSED:
        with pytest.raises(QueryFailed) as failed:
            pool.run(tasks.run_raw_sql, _sql(template, data_file), attach)
        assert failed.value.data_touched
    assert _sha256(data_file) == before
    assert sorted(p.name for p in data_file.parent.iterdir()) == [data_file.name]


def test_settings_after_lock(pool: WorkerPool, attach: dict[str, Path], data_file: Path) -> None:
    names = [
        "lock_configuration",
        "enable_external_access",
        "autoload_known_extensions",
        "autoinstall_known_extensions",
        "allow_community_extensions",
        "allow_unsigned_extensions",
        "allow_extension_repositories",
        "allow_persistent_secrets",
        "python_enable_replacements",
        "allowed_configs",
        "allowed_directories",
        "allowed_paths",
        "temp_directory",
        "threads",
    ]
    got = pool.run(tasks.settings, names, attach)
    assert got["lock_configuration"] == "true"
    assert got["enable_external_access"] == "false"
    for name in names[2:6] + ["allow_persistent_secrets", "python_enable_replacements"]:
        assert got[name] == "false", name
    assert got["allow_extension_repositories"] == "forbidden"
    assert got["allowed_configs"] == got["allowed_directories"] == "[]"
    # DuckDB allow-lists the attached file (and its WAL names) itself; nothing else.
    allowed = got["allowed_paths"].strip("[]").split(", ")
    assert {Path(p).name.split(".")[0] for p in allowed} == {"residents"}
    assert got["temp_directory"] == ""
    assert got["threads"] == "2"


def test_in_memory_scratch_space_is_harmless(pool: WorkerPool, attach: dict[str, Path]) -> None:
    """What stays allowed: scratch tables in the job's own in-memory database, thrown away."""
    sql = "CREATE TABLE scratch AS SELECT 1 AS one; SELECT count(*) FROM scratch"
    assert pool.run(tasks.run_raw_sql, sql, attach) == [(1,)]
    assert pool.run(tasks.refusal, "SELECT * FROM scratch", attach) == "CatalogException"


def test_open_locked_connection_directly(data_file: Path) -> None:
    con = open_locked_connection({"residents": data_file}, WorkerLimits())
    try:
        assert con.execute("SELECT count(*) FROM residents.data").fetchone() == (1000,)
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT * FROM read_blob('{data_file}')")
        with pytest.raises(duckdb.InvalidInputException):
            con.execute("SET lock_configuration = false")
    finally:
        con.close()


def test_attach_alias_must_be_an_identifier(data_file: Path) -> None:
    with pytest.raises(ValueError, match="alias"):
        open_locked_connection({'x" AS y; --': data_file}, WorkerLimits())
