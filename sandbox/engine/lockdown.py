"""The one place where DuckDB is configured for SQL derived from untrusted queries.

Order matters (see DESIGN.md, "Isolation"): resource and extension settings go in first, when
the database is created; then the data is attached read-only; then every way out of the
process is closed (`enable_external_access`, the local file system) and the configuration is
locked, so no statement can undo any of it. After the lock, reading any file — even the
attached ones, through `read_blob`/`read_text`/`COPY` — installing or loading extensions,
attaching files and changing settings all fail; queries on the attached tables still work.

The work is split in two so the worker can create the next job's database ahead of time (a
fresh DuckDB instance costs tens of milliseconds, attaching and locking about one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

__all__ = ["WorkerLimits", "attach_and_lock", "new_connection", "open_locked_connection"]

@dataclass(frozen=True)
class WorkerLimits:
    """Per-job resource limits, enforced inside the worker and by the parent's deadline."""

    wall_seconds: float = 30.0  # the worker is SIGKILLed after this
    memory_mb: int = 1024  # DuckDB memory_limit
    # Address space a job may add on top of the worker's warmed-up baseline (Python, DuckDB,
    # OpenDP and polars reserve 1-2.5 GB of virtual memory before any job). ~2x memory_mb,
    # because DuckDB's allocations fragment the address space well beyond what they keep
    # resident; small enough that one 2 GB allocation (`repeat('x', 2000000000)`) fails at once.
    # A worker that has used more than half of it is replaced after its job.
    address_space_mb: int = 2048
    threads: int = 2
    warm_connections: int = 4  # locked databases a worker keeps warm, one per set of attached files


_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def new_connection(limits: WorkerLimits) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory database with its resource and extension settings, no data yet."""
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": str(limits.threads),
            "memory_limit": f"{limits.memory_mb}MB",
            # Nothing spills to disk: a query that does not fit fails instead.
            "temp_directory": "",
            "max_temp_directory_size": "0B",
            # No extension ever enters: not installed, not loaded, from no repository.
            "autoload_known_extensions": "false",
            "autoinstall_known_extensions": "false",
            "allow_community_extensions": "false",
            "allow_unsigned_extensions": "false",
            "allow_extensions_metadata_mismatch": "false",
            "allow_extension_repositories": "forbidden",
            "allow_parser_override_extension": "STRICT",
            "allow_persistent_secrets": "false",
            "allow_unredacted_secrets": "false",
            # Python variables must not become tables behind the SQL's back.
            "python_enable_replacements": "false",
            # No option may be exempted from the lock.
            "allowed_configs": [],
            # One I/O thread instead of eight: less address space, same speed on local files.
            "async_threads": "1",
            "enable_external_file_cache": "false",
            "enable_http_metadata_cache": "false",
        },
    )
    # A connection-local setting: the worker has no terminal to draw a progress bar on.
    con.execute("SET enable_progress_bar = false")
    return con


def attach_and_lock(
    con: duckdb.DuckDBPyConnection, attach: Mapping[str, Path | str]
) -> duckdb.DuckDBPyConnection:
    """Expose each DuckDB file read-only under its alias, then close every way out and lock."""
    for alias, path in attach.items():
        if not _ALIAS.fullmatch(alias):
            raise ValueError(f"attach alias {alias!r} is not a plain identifier")
        literal = "'" + str(path).replace("'", "''") + "'"
        con.execute(f'ATTACH {literal} AS "{alias}" (READ_ONLY)')
    con.execute("SET enable_external_access = false")
    # enable_external_access still lets read_blob/read_text/COPY reach files that are attached;
    # with the local file system gone, only the already open database files remain readable.
    con.execute("SET disabled_filesystems = 'LocalFileSystem'")
    con.execute("SET lock_configuration = true")
    return con


def open_locked_connection(
    attach: Mapping[str, Path | str], limits: WorkerLimits
) -> duckdb.DuckDBPyConnection:
    """A fresh, locked-down connection on which only the attached tables can be queried."""
    con = new_connection(limits)
    try:
        return attach_and_lock(con, attach)
    except BaseException:
        con.close()
        raise
