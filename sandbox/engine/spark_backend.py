"""The Spark backend: the worker is the Spark Connect client (`sc://host:15002`).

The plan's statements are rendered for Spark in the calling process (compiler/dialects/spark.py,
no data read, so a refusal costs nothing) and run here, inside the isolated worker, on a session
this worker keeps; the exact aggregates come back to the worker over Connect's gRPC stream and go
no further (noise.py). What the cluster must be trusted with is written in the README: it reads
the engine artefacts and computes exact aggregates, like DuckDB does on this machine.

Every session gets our settings before its first statement (spark_session.py: ANSI mode, UTC,
our shuffle partitions), and a temporary view over each engine artefact it reads, created once
(`CREATE TEMPORARY VIEW ... USING parquet`): Spark lists the file and reads its schema then, not
at every statement. A view is named after one registration of its dataset (compiler/dialects/
spark.py, `view_name`), so a dataset registered again is read through a new view. A failure
after a statement started is generic: Spark's error messages quote data and SQL, so neither the
message nor pyspark's own error log may leave the worker.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sandbox.compiler.dialects.spark import SparkStatements
from sandbox.compiler.plan import Plan
from sandbox.engine.backend import Exact, SparkOptions
from sandbox.engine.spark_session import connect, query_rows, quiet
from sandbox.errors import QueryFailed

__all__ = ["SparkBackend", "SparkJob", "warm_up"]


@dataclass(frozen=True)
class SparkJob:
    """What the worker needs to run one plan on Spark (picklable)."""

    options: SparkOptions
    statements: SparkStatements


_SESSIONS: dict[str, Any] = {}
_VIEWS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()  # session -> views it has
_VIEWS_LOCK = threading.Lock()


class SparkBackend:
    name = "spark"

    def __init__(self, session: Any) -> None:
        self.session = session

    @classmethod
    def for_worker(cls, options: SparkOptions) -> SparkBackend:
        """The session this worker keeps for `options.remote` (created on first use)."""
        session = _SESSIONS.get(options.remote)
        if session is None:
            try:
                session = connect(options)
            except Exception:
                raise QueryFailed(
                    f"The Spark cluster at {options.remote} did not answer. Nothing was read and nothing is "
                    "charged. Try again later, or ask the operators to check SANDBOX_SPARK_REMOTE.",
                    data_touched=False,
                ) from None
            _SESSIONS[options.remote] = session
        return cls(session)

    def exact(self, plan: Plan, job: SparkJob) -> Exact:
        statements = job.statements
        try:
            self.create_views(statements.views)
            aggregate = None
            if statements.aggregate is not None:
                # The names from the rows themselves: `frame.columns` would have the server parse and
                # analyse the statement once more (an AnalyzePlan call, some 15% of a query's cost);
                # with no rows there is nothing to name.
                rows = query_rows(self.session, statements.aggregate)
                aggregate = (list(rows[0].__fields__) if rows else [], [tuple(row) for row in rows])
            histograms = {
                pid: [tuple(row) for row in query_rows(self.session, sql)] for pid, sql in statements.histograms.items()
            }
        except Exception:
            _SESSIONS.pop(next((k for k, v in _SESSIONS.items() if v is self.session), ""), None)
            with _VIEWS_LOCK:
                _VIEWS.pop(self.session, None)
            raise QueryFailed(data_touched=True) from None  # never Spark's message
        return Exact.from_rows(plan, aggregate, histograms)

    def create_views(self, views: dict[str, str]) -> None:
        """The session's temporary view over each artefact the statements read, once per session
        (several threads may share one session: each view is created by one of them)."""
        with _VIEWS_LOCK:
            made = _VIEWS.setdefault(self.session, set())
            for name, location in views.items():
                if name not in made:
                    self.session.sql(
                        f"CREATE OR REPLACE TEMPORARY VIEW `{name}` USING parquet OPTIONS (path {_string(location)})"
                    ).collect()
                    made.add(name)


def _string(text: str) -> str:
    """A Spark SQL string literal (backslash escapes are on by default)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def warm_up() -> None:
    """Import the Connect client before the worker's address-space limit applies."""
    import pyspark.sql.connect.session  # noqa: F401

    quiet()
