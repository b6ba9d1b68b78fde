"""Service settings, from the environment (SANDBOX_*) or the CLI's flags."""

from __future__ import annotations

from pathlib import Path

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
    workers: int = Field(default=2, ge=1, le=32, description="isolated engine worker processes")
    query_seconds: float = Field(default=30.0, gt=0, description="hard wall-clock limit per job")
    query_memory_mb: int = Field(default=1024, ge=64, description="DuckDB memory limit per job")
    max_wait_seconds: float = Field(default=60.0, gt=0, description="longest synchronous wait for a job")

    @property
    def database(self) -> str:
        return self.database_url or str(self.data_dir / "sandbox.db")
