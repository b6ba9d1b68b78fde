"""A Spark Connect session with our settings, for the worker (spark_backend.py) and for
registration (spark_registration.py).

Every session gets them before its first statement: ANSI mode (an overflow or a bad conversion
fails instead of wrapping silently; the rendering guards every operation that could), the UTC
time zone (the DuckDB engine's TIMESTAMPs have no zone), the shuffle partitions, and
TIMESTAMP_NTZ for Parquet TIMESTAMPs written without a zone. pyspark's own error logging is
silenced: a failed statement's message, SQL and stack trace can quote private values.
"""

from __future__ import annotations

import logging
from typing import Any

from sandbox.engine.backend import SparkOptions

__all__ = ["SESSION_SETTINGS", "connect", "query_rows", "quiet", "session_settings"]


def session_settings(options: SparkOptions) -> dict[str, str]:
    return {
        "spark.sql.ansi.enabled": "true",
        "spark.sql.session.timeZone": options.time_zone,
        "spark.sql.shuffle.partitions": str(options.shuffle_partitions),
        # Parquet TIMESTAMPs written without a zone (DuckDB's) are read as TIMESTAMP_NTZ.
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    }


SESSION_SETTINGS = tuple(session_settings(SparkOptions(remote="sc://x")))


def quiet() -> None:
    """pyspark logs a failed statement's message, SQL and stack trace itself; in the worker that
    text would reach the service's log, and it can quote private values."""
    for name in ("pyspark", "SQLQueryContextLogger", "py4j", "grpc"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False


def connect(options: SparkOptions) -> Any:
    """A new Spark Connect session with our settings."""
    from pyspark.sql import SparkSession

    quiet()
    session = SparkSession.builder.remote(options.remote).create()
    for key, value in session_settings(options).items():
        session.conf.set(key, value)
    return session


def query_rows(session: Any, sql: str) -> list[Any]:
    """A SELECT's rows, planned once. `session.sql(text)` is a command on Spark Connect: the
    server parses, analyses and plans the statement to answer it, and `collect()` then sends it
    again to be parsed, analysed and planned anew. A relation that only holds the text is sent
    once, by `collect()`. (Commands, such as CREATE VIEW, still go through `session.sql`.)"""
    from pyspark.sql.connect.dataframe import DataFrame
    from pyspark.sql.connect.plan import SQL

    return DataFrame(SQL(sql), session).collect()
