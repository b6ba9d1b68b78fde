"""Typed dependencies: who is calling, and the services a route needs."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandbox import accounts
from sandbox.accounts import User
from sandbox.audit import checkpoints
from sandbox.audit.journal import Journal
from sandbox.catalog import Catalog
from sandbox.errors import Forbidden
from sandbox.private_files import private_dir
from sandbox.settings import Settings
from sandbox.store import Store

_bearer = HTTPBearer(auto_error=False, description="a token from `sandbox users` or an operator")


class Services:
    """Everything a request may need, built once per app; the engine's workers start lazily.
    The data directory is made owner-only (0700): it holds the database, keys and audit records."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        private_dir(settings.data_dir)
        self.catalog = Catalog(settings.data_dir)
        self.journal = Journal.of(settings.data_dir, settings.database)
        self.store = Store(settings.database, journal=self.journal)

    @cached_property
    def jobs(self):
        from sandbox.engine import Engine, WorkerLimits
        from sandbox.jobs import JobService

        engine = Engine(self.catalog, workers=self.settings.workers, limits=WorkerLimits(
            wall_seconds=self.settings.query_seconds, memory_mb=self.settings.query_memory_mb))
        return JobService(self.store, self.catalog, engine, parallel=self.settings.workers,
                          max_active=self.settings.max_active_jobs, lease_seconds=self.settings.job_lease_seconds)

    # -- signed audit checkpoints (sandbox/audit/checkpoints.py) -------------------------------
    @cached_property
    def signer(self) -> checkpoints.Signer:
        return checkpoints.Signer.load_or_create(self.settings.data_dir)

    @cached_property
    def checkpointer(self) -> checkpoints.Checkpointer:
        """Started by the app's lifespan; signs the audit head every N events or T seconds."""
        return checkpoints.Checkpointer(
            self.store, self.signer, every_events=self.settings.checkpoint_every_events,
            every_seconds=self.settings.checkpoint_every_seconds,
            witness=checkpoints.witness_path(self.settings.data_dir, self.settings.database), journal=self.journal)

    def trust(self) -> checkpoints.Trust:
        """This server's key, its own copies of the checkpoints it signed and its journal, for `verify`."""
        witness = checkpoints.witness_path(self.settings.data_dir, self.settings.database)
        return checkpoints.Trust.of(self.signer, checkpoints.read_witness(witness), self.journal)

    def close(self) -> None:
        if "jobs" in self.__dict__:
            self.jobs.close()
            if self.jobs.engine is not None:
                self.jobs.engine.close()
        if "checkpointer" in self.__dict__:
            self.checkpointer.stop()  # signs the events of the last moments
        self.store.close()


def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]


def current_user(
    svc: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    return accounts.authenticate(svc.store, credentials.credentials if credentials else None)


CurrentUser = Annotated[User, Depends(current_user)]


def role(*allowed: str) -> Callable[[User], User]:
    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise Forbidden(f"This needs the role {' or '.join(allowed)}; you are signed in as {user.role}.")
        return user

    return check


Developer = Annotated[User, Depends(role("developer"))]
Manager = Annotated[User, Depends(role("operator", "admin"))]
Auditor = Annotated[User, Depends(role("auditor"))]
Reader = Annotated[User, Depends(role("developer", "operator", "admin", "auditor"))]
Member = Annotated[User, Depends(role("developer", "operator", "admin", "auditor", "steward"))]  # catalog, agreements
Steward = Annotated[User, Depends(role("steward"))]
Overseer = Annotated[User, Depends(role("operator", "admin", "auditor"))]
Admin = Annotated[User, Depends(role("admin"))]
