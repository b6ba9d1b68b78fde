"""The execution-backend interface: a compiled plan in, exact aggregates out, inside the worker.

A backend renders the plan's bounded statements for its engine, runs them and hands back the
exact aggregates and histograms; nothing else. Noise, disclosure control and the output SQL are
shared (noise.py's `noisy_release`), so adding a backend touches neither the compiler nor the
service, and no backend can release anything that has not gone through the same noise.

    Backend.exact(plan) -> Exact      runs in the isolated worker; Exact never leaves it

Which backend runs a dataset is configuration (`BackendChoice`, from settings.py): DuckDB on the
engine file by default, Spark through Spark Connect for the datasets named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from sandbox.compiler.plan import Plan
    from sandbox.settings import Settings

__all__ = ["BACKENDS", "Backend", "BackendChoice", "Exact", "SparkOptions"]

BackendName = Literal["duckdb", "spark"]
BACKENDS: tuple[BackendName, ...] = ("duckdb", "spark")


@dataclass
class Exact:
    """Exact aggregates of one plan: per group key, each primitive's exact value, and per
    quantile primitive, per group, the count of each candidate bin. Lives only in the worker."""

    aggregates: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    histograms: dict[str, dict[tuple, dict[int, int]]] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls,
        plan: Plan,
        aggregate: tuple[Sequence[str], Iterable[Sequence[Any]]] | None,
        histograms: Mapping[str, Iterable[Sequence[Any]]],
    ) -> Exact:
        """From result rows as every backend returns them: the group keys first (`__k<i>`),
        then the primitives (aggregate), or then the bin and its count (histograms)."""
        nkeys = len(plan.key_names)
        exact = cls()
        if aggregate is not None:
            names, rows = aggregate
            for row in rows:
                exact.aggregates[tuple(row[:nkeys])] = dict(zip(names[nkeys:], row[nkeys:], strict=True))
        for pid, rows in histograms.items():
            per_group: dict[tuple, dict[int, int]] = defaultdict(dict)
            for row in rows:
                per_group[tuple(row[:nkeys])][int(row[nkeys])] = int(row[nkeys + 1])
            exact.histograms[pid] = dict(per_group)
        return exact


class Backend(Protocol):
    """Runs a plan's bounded statements on one engine. Called inside the worker only."""

    name: str

    def exact(self, plan: Plan) -> Exact: ...


@dataclass(frozen=True)
class SparkOptions:
    """How the worker reaches Spark and what it sets on every session (picklable: it travels to
    the worker with the job).

    `data_url` maps the local data directory to where the cluster reads the engine artefacts
    (`file:///srv/sandbox` locally, `hdfs://...` or `s3a://...` on a cluster); None means the
    cluster sees the same paths as this machine."""

    remote: str
    data_dir: str | None = None
    data_url: str | None = None
    shuffle_partitions: int = 8
    time_zone: str = "UTC"

    def artefact_url(self, local: str) -> str:
        if self.data_url is None or self.data_dir is None:
            return local
        prefix = self.data_dir.rstrip("/") + "/"
        if not local.startswith(prefix):
            raise ValueError(f"{local} is not under the data directory {self.data_dir}")
        return self.data_url.rstrip("/") + "/" + local[len(prefix) :]


@dataclass(frozen=True)
class BackendChoice:
    """Which backend serves which dataset: `default` for all, `datasets` for exceptions."""

    default: BackendName = "duckdb"
    datasets: Mapping[str, BackendName] = field(default_factory=dict)
    spark: SparkOptions | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, data_dir: Path | None = None) -> BackendChoice:
        spark = None
        if settings.spark_remote:
            spark = SparkOptions(
                remote=settings.spark_remote,
                data_dir=str((data_dir or settings.data_dir).resolve()),
                data_url=settings.spark_data_url,
                shuffle_partitions=settings.spark_shuffle_partitions,
            )
        choice = cls(settings.backend, dict(settings.dataset_backends), spark)
        choice.check()
        return choice

    def check(self) -> None:
        for name in (self.default, *self.datasets.values()):
            if name not in BACKENDS:
                raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
        if self.spark is None and "spark" in (self.default, *self.datasets.values()):
            raise ValueError(
                "a dataset is to run on Spark but no Spark Connect server is configured; "
                "set SANDBOX_SPARK_REMOTE=sc://host:15002"
            )

    def of(self, dataset: str) -> BackendName:
        return self.datasets.get(dataset, self.default)

    def for_plan(self, datasets: Iterable[str]) -> BackendName:
        """One backend per plan: every dataset a query reads must live on the same one."""
        names = {self.of(d) for d in datasets}
        if len(names) != 1:
            raise ValueError(f"datasets on different backends: {sorted(names)}")
        return names.pop()
