"""Service settings, from the environment (SANDBOX_*) or the CLI's flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

REPO_POLICIES = Path(__file__).resolve().parents[1] / "policies"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="catalog, managed data and the server secret")
    database_url: str | None = Field(
        default=None, validation_alias="DATABASE_URL",
        description="PostgreSQL URL for the metadata store; default: SQLite file DATA_DIR/sandbox.db",
    )
    policies_dir: Path = Field(default=REPO_POLICIES, description="dataset policies registered at start")
    lang: str = Field(default="en", description="the console's language when the browser asks for none we have: "
                                                "en or zh-CN (SANDBOX_LANG); each reader may choose their own")
    workers: int = Field(default=2, ge=1, le=32, description="isolated engine worker processes")
    query_seconds: float = Field(default=30.0, gt=0, description="hard wall-clock limit per job")
    query_memory_mb: int = Field(default=1024, ge=64, description="DuckDB memory limit per job")
    max_wait_seconds: float = Field(default=60.0, gt=0, description="longest synchronous wait for a job")

    # Several server processes may share one database (and one data directory): each owns the jobs
    # it accepted under a lease it renews; when a process dies, the others settle its jobs.
    job_lease_seconds: float = Field(
        default=30.0, ge=0.5, description="how long a job stays its process's after the last heartbeat")
    console_session_hours: float = Field(default=8.0, gt=0, description="a console sign-in lasts this long")

    # Abuse controls (sandbox/abuse.py). The rate limit is a token bucket in each server
    # process: N processes behind a balancer let a developer through N times as fast.
    jobs_per_minute: float = Field(
        default=120, ge=0,
        description="job submissions and explains per developer per minute, per server process; 0: no limit")
    jobs_burst: int = Field(default=240, ge=1, description="how many of them may come at once (the bucket's size)")
    max_active_jobs: int = Field(
        default=16, ge=0, description="queued or running jobs per developer, across all processes; 0: no limit")
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="largest HTTP request body (SQL itself stops at 20,000 characters)")

    # Signed audit checkpoints (sandbox/audit/checkpoints.py), with the key DATA_DIR/audit-signing.key.
    checkpoint_every_events: int = Field(default=100, ge=1, description="sign the audit head after this many events")
    checkpoint_every_seconds: float = Field(
        default=300.0, gt=0, description="... or this long after the last checkpoint, if the head has moved")

    # Execution backends (sandbox/engine/backend.py). A dataset is registered on, and served by,
    # its backend: DuckDB on this machine by default; Spark through Spark Connect when named.
    backend: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="backend of every dataset not named in dataset_backends")
    dataset_backends: dict[str, Literal["duckdb", "spark"]] = Field(
        default_factory=dict, description='per-dataset backend, as JSON: {"residents": "spark"}')
    spark_remote: str | None = Field(
        default=None, description="Spark Connect server for Spark-backed datasets, e.g. sc://host:15002")
    spark_data_url: str | None = Field(
        default=None,
        description="where the cluster reads DATA_DIR (e.g. hdfs://nn/sandbox); default: the same local paths")
    spark_shuffle_partitions: int = Field(default=8, ge=1, description="spark.sql.shuffle.partitions per session")

    @property
    def database(self) -> str:
        return self.database_url or str(self.data_dir / "sandbox.db")
