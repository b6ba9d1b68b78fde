"""The job service: submit, run, cancel, wait, read (the path is drawn in the package docstring)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, cast, func, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from sandbox import abuse, agreements, audit, ledger, stewards
from sandbox.accounts import User, require_licence
from sandbox.catalog import Catalog
from sandbox.compiler import OutputRules, Plan, compile_query
from sandbox.compiler.work import DEFAULT_MEMORY_MB
from sandbox.engine import Engine
from sandbox.errors import (
    AgreementInactive,
    BudgetExceeded,
    BudgetExhausted,
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    QueryFailed,
    SandboxError,
    SQLRejected,
)
from sandbox.jobs import settle as ending
from sandbox.jobs.leases import Leases
from sandbox.jobs.settle import ACTIVE, claim, settle
from sandbox.store import Database, Store, now, reading
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, jobs
from sandbox.store.schema import agreements as agreement_table

__all__ = ["JobService", "public", "rejections"]

log = logging.getLogger("sandbox.jobs")

# Refusals a developer caused: recorded as a rejected job and audited, free. Anything else that
# goes wrong is the sandbox's fault and surfaces as a 500 `internal` with an id (sandbox/api/app.py).
_REFUSALS = (SQLRejected, BudgetExceeded, BudgetExhausted, InvalidParameter, AgreementInactive, Forbidden, NotFound)


def cache_key(plan: Plan, requested_delta: float | None, contribution: str | None = None) -> str:
    """Same question, same answer: normalized SQL and parameters, the contribution bounds asked
    for included (the agreement is matched too)."""
    parts = [plan.normalized_sql, plan.epsilon, requested_delta]
    if contribution:
        parts.append(contribution)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _contribution_text(contribution: dict[str, Any] | None) -> str | None:
    """The bounds asked for, canonical (None when the query takes the ceilings)."""
    if not contribution:
        return None
    cleaned = {k: v for k, v in contribution.items() if v not in (None, {}, [])}
    return json.dumps(cleaned, sort_keys=True) if cleaned else None


def public(row) -> dict[str, Any]:
    values = dict(row._mapping)
    values["result"] = json.loads(values["result"]) if values["result"] else None
    values["error"] = json.loads(values["error"]) if values["error"] else None
    values["contribution"] = json.loads(values["contribution"]) if values.get("contribution") else None
    values["charge_epsilon"] = values["charge_epsilon"] / EPSILON_UNIT
    values["charge_delta"] = values["charge_delta"] / DELTA_UNIT
    values["reused"] = values["reused_from"] is not None
    for internal in ("idempotency_key", "owner", "lease_until"):
        values.pop(internal, None)
    return values


def _rules(agreement: dict[str, Any]) -> OutputRules:
    return OutputRules(agreement["min_count"], agreement["round_to"], agreement["per_query_epsilon"])


def _with_stewards(rules: OutputRules, conn: Connection, agreement_id: str, datasets: Iterable[str]) -> OutputRules:
    """An agreement's rules with the stewards' own for the datasets a query reads (the strictest wins)."""
    min_count, round_to = stewards.output_rules(conn, agreement_id, datasets)
    return OutputRules(max(rules.min_count, min_count), math.lcm(rules.round_to, round_to), rules.max_epsilon)


class JobService:
    def __init__(
        self, store: Store, catalog: Catalog, engine: Engine, *, parallel: int = 2, max_active: int = 0,
        lease_seconds: float = 30.0,
    ) -> None:
        self.store, self.catalog, self.engine = store, catalog, engine
        self.max_active = max_active  # queued or running jobs per developer (sandbox/abuse.py); 0: no limit
        self.leases = Leases(store, seconds=lease_seconds)
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sandbox-job")
        self._finished: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # -- the process's life ---------------------------------------------------------------------
    def start(self) -> int:
        """Settle the jobs of processes that died (expired leases), then keep this process's
        leases alive and keep settling others' as they expire. Returns the jobs settled now."""
        closed = self.recover()
        self.leases.start(self.recover)
        return closed

    def recover(self) -> int:
        """Settle every open job whose lease has expired: running -> failed, charge kept;
        queued -> failed, refunded. Jobs of live processes are left alone."""
        closed = 0
        for job_id in self.leases.expired():
            with self.store.transaction() as conn:
                row = claim(conn, job_id)
                if row is None or (row.lease_until is not None and row.lease_until >= now()):
                    continue  # settled meanwhile, or its process renewed the lease
                settle(conn, row, ending.recovered(row.status))
                closed += 1
        return closed

    def close(self) -> None:
        self.leases.stop()
        self._executor.shutdown(wait=True, cancel_futures=False)

    # -- developer actions ---------------------------------------------------------------------
    def explain(
        self, user: User, *, sql: str, epsilon: float, delta: float | None, agreement_id: str | None,
        contribution: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Cost and expected accuracy before spending anything; free, and logged."""
        if user.role == "developer":
            require_licence(self.store, user)
        head = agreements.get(self.store, user, agreement_id) if agreement_id else None
        try:
            plan, _ = self._compile_under(head, sql, epsilon, delta, contribution)
        except SandboxError as exc:
            self._explained(user, agreement_id, None, {"sql": sql, "error": exc.to_dict()}, outcome="rejected")
            raise
        self._explained(user, agreement_id, plan.dataset, {"sql": sql, "epsilon": plan.epsilon, "delta": plan.delta})
        return plan.explain()

    def _explained(self, user: User, agreement_id: str | None, dataset: str | None, details: dict[str, Any],
                   outcome: str = "ok") -> None:
        with self.store.transaction() as conn:
            audit.append(conn, action="job.explained", outcome=outcome, actor=user.id, role=user.role,
                         agreement_id=agreement_id, dataset=dataset, details=details)

    def _compile(
        self, sql: str, epsilon: float, delta: float | None, rules: OutputRules, contribution: dict[str, Any] | None
    ) -> Plan:
        """The compiler, with the engine's job memory limit (worst cases are planned against it)."""
        limits = getattr(self.engine, "limits", None)  # an engine without limits: the default job memory
        memory_mb = limits.memory_mb if limits is not None else DEFAULT_MEMORY_MB
        return compile_query(sql, self.catalog, epsilon=epsilon, delta=delta, rules=rules, memory_mb=memory_mb,
                             contribution=contribution)

    def _compile_under(
        self, head: dict[str, Any] | None, sql: str, epsilon: float, delta: float | None,
        contribution: dict[str, Any] | None,
    ) -> tuple[Plan, OutputRules]:
        """Compiled under the agreement's output rules and, when the query reads a dataset whose
        steward set stricter ones, again under those (they do not change what it reads)."""
        rules = _rules(head) if head is not None else OutputRules()
        plan = self._compile(sql, epsilon, delta, rules, contribution)
        if head is None:
            return plan, rules
        with self.store.read() as conn:
            stricter = _with_stewards(rules, conn, head["id"], self._private(plan))
        if stricter != rules:
            plan = self._compile(sql, epsilon, delta, stricter, contribution)
        return plan, stricter

    def submit(
        self, user: User, *, sql: str, epsilon: float, delta: float | None, agreement_id: str,
        idempotency_key: str | None = None, contribution: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compile, then in one transaction: the stored release of an identical query under this
        agreement (free), or a new job with its reservation and audit event. A refusal is
        recorded as a rejected job; a replayed Idempotency-Key returns its job."""
        if user.role != "developer":
            raise Forbidden("Only licensed developers submit jobs.")
        key = idempotency_key or None  # an empty key is no key (it is stored, and unique)
        asked = _contribution_text(contribution)
        request = {"sql": sql, "epsilon": epsilon, "delta": delta, "agreement_id": agreement_id, "contribution": asked}
        if key and (replay := self._replay(user, key, request)) is not None:
            return replay
        job = _new_job(user, sql, epsilon, delta, key) | {"contribution": asked}
        try:
            head = agreements.get(self.store, user, agreement_id)  # existence and ownership
            # Compiled outside the write transaction, which on SQLite serializes all writers.
            plan, rules = self._compile_under(head, sql, epsilon, delta, contribution)
            with self.store.transaction() as conn:
                row = self._admit(conn, user, job, plan, head, rules, requested_delta=delta)
        except _REFUSALS as exc:
            self._record_refusal(user, job, agreement_id, exc)
            raise
        except IntegrityError:  # the same idempotency key, submitted concurrently
            if not key or (replay := self._replay(user, key, request)) is None:
                raise
            return replay
        if row["status"] == "queued":
            self._dispatch(row["id"], plan)
        return row

    def _admit(self, conn: Connection, user: User, job: dict[str, Any], plan: Plan, head: dict[str, Any],
               rules: OutputRules, *, requested_delta: float | None) -> dict[str, Any]:
        """Inside the submission's transaction: reuse an earlier release, or queue a new job."""
        agreement_id = head["id"]
        current = self._in_force(conn, user, plan, head, rules)
        key = cache_key(plan, requested_delta, job.get("contribution"))
        values = job | {"agreement_id": agreement_id, "dataset": plan.dataset, "cache_key": key,
                        "compiled_sql": plan.aggregate_sql, "epsilon": plan.epsilon, "delta": plan.delta}
        earlier = conn.execute(select(jobs).where(
            jobs.c.agreement_id == agreement_id, jobs.c.cache_key == key, jobs.c.status == "released",
            jobs.c.reused_from.is_(None)).order_by(jobs.c.created_at).limit(1)).first()
        if earlier is not None:
            return self._reuse(conn, user, values, earlier)
        if current.status == "exhausted":  # an exhausted agreement still hands out its earlier releases
            raise agreements.exhausted(current)
        abuse.check_active_jobs(conn, user.id, self.max_active)  # TooManyJobs: not recorded
        return self._queue(conn, user, values, plan)

    def _in_force(self, conn: Connection, user: User, plan: Plan, head: dict[str, Any], rules: OutputRules) -> Any:
        """The agreement now, in the transaction: usable for the datasets the plan reads (public
        reference tables need none), with the output rules the query was compiled under (the
        agreement's and its stewards')."""
        current = agreements.usable(conn, user, head["id"], self._private(plan), allow_exhausted=True)
        if _with_stewards(_rules(current._mapping), conn, head["id"], self._private(plan)) != rules:
            raise AgreementInactive(f"Agreement {head['id']} changed while the query was compiled; submit it again.",
                                    agreement_id=head["id"])
        return current

    def _private(self, plan: Plan) -> dict[str, list[str]]:
        """The private datasets the plan reads, with their columns (public reference tables need
        no agreement)."""
        return {name: list(cols) for name, cols in plan.scope.items() if not self.catalog.get(name).policy.public}

    def _reuse(self, conn: Connection, user: User, values: dict[str, Any], earlier: Any) -> dict[str, Any]:
        conn.execute(insert(jobs).values(**values, status="released", result=earlier.result,
                                         result_hash=earlier.result_hash, reused_from=earlier.id,
                                         started_at=now(), finished_at=now()))
        audit.append(conn, action="job.reused", actor=user.id, role=user.role, job_id=values["id"],
                     agreement_id=values["agreement_id"], dataset=values["dataset"],
                     details={"sql": values["sql"], "reused_from": earlier.id, "result_hash": earlier.result_hash,
                              "charge_epsilon": 0, "charge_delta": 0})
        return self._get(conn, values["id"])

    def _queue(self, conn: Connection, user: User, values: dict[str, Any], plan: Plan) -> dict[str, Any]:
        job_id, agreement_id = values["id"], values["agreement_id"]
        conn.execute(insert(jobs).values(**values, status="queued", owner=self.leases.owner,
                                         lease_until=self.leases.until()))
        eps, dlt = ledger.reserve(conn, agreement_id=agreement_id, job_id=job_id, epsilon=plan.epsilon,
                                  delta=plan.delta, datasets=sorted(self._private(plan)))
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(charge_epsilon=eps, charge_delta=dlt))
        audit.append(conn, action="job.submitted", actor=user.id, role=user.role, job_id=job_id,
                     agreement_id=agreement_id, dataset=plan.dataset,
                     details={"sql": values["sql"], "compiled_sql": plan.aggregate_sql, "epsilon": plan.epsilon,
                              "delta": plan.delta, "reserved_epsilon": eps / EPSILON_UNIT,
                              "reserved": ledger.units(eps, dlt), "contribution": values.get("contribution"),
                              "datasets": sorted(self._private(plan))})
        return self._get(conn, job_id)

    def _replay(self, user: User, key: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The job an idempotency key already names, or None; the same key with another request is
        a client error, not a silent replay."""
        with self.store.read() as conn:
            row = conn.execute(
                select(jobs).where(jobs.c.developer_id == user.id, jobs.c.idempotency_key == key)).first()
        if row is None:
            return None
        same_delta = request["delta"] is None or row.delta == request["delta"]  # None: the default the plan chose
        agreement_id = request["agreement_id"] if row.agreement_id else None
        asked = (request["sql"], agreement_id, request["contribution"])
        if (row.sql, row.agreement_id, row.contribution) != asked or (
                row.status != "rejected" and (row.epsilon != request["epsilon"] or not same_delta)):
            raise Conflict(f"Idempotency-Key {key!r} was used for a different request (job {row.id}); "
                           "use a new key for a new request.", job_id=row.id)
        return public(row)

    def _record_refusal(self, user: User, job: dict[str, Any], agreement_id: str, exc: SandboxError) -> None:
        """A refused query is a job too (status rejected, no charge), and it is audited."""
        with self.store.transaction() as conn:
            if isinstance(exc, AgreementInactive) and exc.fields.get("status") == "expired":
                agreements.expire(conn, agreement_id)  # recorded even though the job is refused
            exists = conn.execute(select(agreement_table.c.id).where(
                agreement_table.c.id == agreement_id, agreement_table.c.developer_id == user.id)).first()
            agreement = agreement_id if exists else None
            conn.execute(insert(jobs).values(**job, agreement_id=agreement, status="rejected",
                                             error=json.dumps(exc.to_dict(), default=str), finished_at=now()))
            audit.append(conn, action="job.rejected", outcome="rejected", actor=user.id, role=user.role,
                         job_id=job["id"], agreement_id=agreement,
                         details={"sql": job["sql"], "code": exc.code, "reason": exc.message})
        exc.fields.setdefault("job_id", job["id"])

    # -- running -------------------------------------------------------------------------------
    def _dispatch(self, job_id: str, plan: Plan) -> None:
        self.leases.hold(job_id)
        with self._lock:
            self._finished[job_id] = threading.Event()
        self._executor.submit(self._run, job_id, plan)

    def _run(self, job_id: str, plan: Plan) -> None:
        try:
            if self._start_running(job_id):
                self._finish(job_id, self._execute(plan))
        except Exception:  # the lease is dropped below: the job is recovered when it runs out
            log.exception("job %s could not be run or settled", job_id)
        finally:
            self.leases.drop(job_id)
            with self._lock:
                event = self._finished.pop(job_id, None)
            if event is not None:
                event.set()

    def _start_running(self, job_id: str) -> bool:
        """queued -> running, if the job is still queued and still ours (not cancelled, not recovered)."""
        with self.store.transaction() as conn:
            return bool(conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.owner == self.leases.owner)
                .values(status="running", started_at=now(), lease_until=self.leases.until())).rowcount)

    def _execute(self, plan: Plan) -> ending.Ending:
        """The worker's release as the ending of the job, or its failure."""
        try:
            release = self.engine.execute(plan)
        except QueryFailed as exc:
            return ending.failed(exc)
        except Exception:  # never let an unexpected error leak or leave the job running
            log.exception("the engine failed on a job")
            return ending.failed(QueryFailed(data_touched=True))
        # release.notes: the plan's and the worker's (why no group was released, open interval ends)
        result = release.to_dict() | {"columns_noise": [c.__dict__ for c in plan.outputs]}
        text = json.dumps(result, default=str, sort_keys=True)
        return ending.released(text, hashlib.sha256(text.encode()).hexdigest(), {
            "seconds": round(release.seconds, 4), "accuracy": [c.__dict__ for c in plan.outputs]})

    def _finish(self, job_id: str, end: ending.Ending) -> None:
        with self.store.transaction() as conn:
            row = claim(conn, job_id, owner=self.leases.owner, status="running")
            if row is None:  # cancelled or recovered meanwhile: settled already, the result is dropped
                log.info("job %s was settled while it ran; its result is discarded", job_id)
                return
            settle(conn, row, end)

    # -- waiting, cancelling, reading ------------------------------------------------------------
    def wait(self, user: User, job_id: str, timeout: float) -> dict[str, Any]:
        """The job once it has ended, or as it is after `timeout` seconds. A job this process runs
        signals its end; one another process runs (or that was cancelled) is read again, more
        slowly the longer it takes (50 ms up to 0.5 s)."""
        job = self.get(user, job_id)  # ownership first: nobody may wait on (and so time) another's job
        deadline, pause = time.monotonic() + timeout, 0.05
        while job["status"] in ACTIVE and (left := deadline - time.monotonic()) > 0:
            with self._lock:
                event = self._finished.get(job_id)
            if event is not None:
                event.wait(min(left, 1.0))
            else:
                time.sleep(min(left, pause))
                pause = min(pause * 2, 0.5)
            job = self.get(user, job_id)
        return job

    def cancel(self, user: User, job_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self._own(conn, user, job_id, lock=True)
            if row.status in ACTIVE:
                settle(conn, row, ending.cancelled(row.status, user))
            return self._get(conn, job_id)

    def get(self, user: User, job_id: str) -> dict[str, Any]:
        with self.store.read() as conn:
            return public(self._own(conn, user, job_id))

    def list(self, user: User, *, agreement_id: str | None = None, limit: int = 100,
             offset: int = 0) -> list[dict[str, Any]]:
        query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit).offset(offset)
        if user.role == "developer":
            query = query.where(jobs.c.developer_id == user.id)
        if agreement_id:
            query = query.where(jobs.c.agreement_id == agreement_id)
        with self.store.read() as conn:
            return [public(r) for r in conn.execute(query)]

    def _own(self, conn: Connection, user: User, job_id: str, lock: bool = False) -> Any:
        query = select(jobs).where(jobs.c.id == job_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None or (user.role == "developer" and row.developer_id != user.id):
            raise NotFound(f"No job {job_id}.", job_id=job_id)
        if lock and user.role != "developer":
            raise Forbidden("Only the developer who submitted a job can cancel it.")
        return row

    def _get(self, conn: Connection, job_id: str) -> dict[str, Any]:
        return public(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())


def _new_job(user: User, sql: str, epsilon: object, delta: object, key: str | None) -> dict[str, Any]:
    """The row every submission starts from, refused or not."""
    return {"id": str(uuid.uuid4()), "developer_id": user.id, "sql": sql,
            "epsilon": float(epsilon) if isinstance(epsilon, int | float) else 0.0,
            "delta": delta if isinstance(delta, int | float) else None, "created_at": now(), "idempotency_key": key}


def rejections(db: Database) -> list[tuple[str, int]]:
    """Refused jobs by reason: the compiler rule for refused SQL, otherwise the error code
    (budget exhausted, agreement inactive, ...), most frequent first. One GROUP BY."""
    with reading(db) as conn:
        dialect = conn.dialect.name
        reason = func.coalesce(func.nullif(_json_text(jobs.c.error, "rule", dialect), ""),
                               _json_text(jobs.c.error, "code", dialect)).label("reason")
        rows = conn.execute(select(reason, func.count().label("n")).where(jobs.c.status == "rejected")
                            .group_by(reason).order_by(func.count().desc(), reason)).all()
    return [((r.reason or "unknown").replace("_", " "), r.n) for r in rows]


def _json_text(column: Any, key: str, dialect: str) -> Any:
    if dialect == "sqlite":
        return func.json_extract(column, f"$.{key}")
    return cast(column, JSONB)[key].astext
