"""Jobs: the one path from a developer's SQL to a release.

    submit: agreement in force? -> compile (rejections are recorded) -> identical earlier
            release under this agreement? (reused, free) -> [one transaction: job row, budget
            reservation (compare-and-set), audit event] -> queued
    run:    running -> isolated worker -> [one transaction: release stored, charge committed,
            audit event] -> released; on failure the charge is kept if data was read, else refunded
    start:  jobs left queued or running by a crash are closed (running: charge kept)

A release is returned only after its charge and audit event are committed, because the
release is read back from the committed job row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from sandbox import agreements, audit, ledger, limits
from sandbox.accounts import User, require_licence
from sandbox.catalog import Catalog
from sandbox.compiler import OutputRules, Plan, compile_query
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
from sandbox.store import Store, now
from sandbox.store.schema import DELTA_UNIT, EPSILON_UNIT, jobs
from sandbox.store.schema import agreements as agreement_table

__all__ = ["JobService"]

log = logging.getLogger("sandbox.jobs")

FINAL = ("released", "rejected", "failed", "cancelled")
_REFUSALS = (SQLRejected, BudgetExceeded, BudgetExhausted, InvalidParameter, AgreementInactive, Forbidden, NotFound)


def compile_or_refuse(sql: str, catalog: Catalog, **options: Any) -> Plan:
    """The compiler sees no data, so an exception it did not mean to raise depends on the
    query's text alone: it becomes a refusal (recorded, audited, free) rather than a 500."""
    try:
        return compile_query(sql, catalog, **options)
    except SandboxError:
        raise
    except Exception:
        log.exception("the compiler failed on a query; refused it")
        raise SQLRejected(
            "This query", "the sandbox could not compile it (an internal error, logged for the operators)",
            "Rewrite it within the accepted SQL (see the README), and tell the operators if it should work.",
            rule="internal",
        ) from None


def cache_key(plan: Plan, requested_delta: float | None) -> str:
    """Same question, same answer: normalized SQL and parameters (the agreement is matched too)."""
    text = json.dumps([plan.normalized_sql, plan.epsilon, requested_delta], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def public(row) -> dict[str, Any]:
    values = dict(row._mapping)
    values["result"] = json.loads(values["result"]) if values["result"] else None
    values["error"] = json.loads(values["error"]) if values["error"] else None
    values["charge_epsilon"] = values["charge_epsilon"] / EPSILON_UNIT
    values["charge_delta"] = values["charge_delta"] / DELTA_UNIT
    values["reused"] = values["reused_from"] is not None
    values.pop("idempotency_key", None)
    return values


class JobService:
    def __init__(
        self, store: Store, catalog: Catalog, engine: Engine, *, parallel: int = 2, max_active: int = 0
    ) -> None:
        self.store, self.catalog, self.engine = store, catalog, engine
        self.max_active = max_active  # queued or running jobs per developer (sandbox/limits.py); 0: no limit
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sandbox-job")
        self._finished: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # -- start-up ----------------------------------------------------------------------------
    def recover(self) -> int:
        """Close jobs a crash left open: no job stays 'running' forever, no charge lacks its job."""
        closed = 0
        with self.store.transaction() as conn:
            for row in conn.execute(select(jobs).where(jobs.c.status.in_(("queued", "running")))).all():
                touched = row.status == "running"
                error = QueryFailed(data_touched=touched).to_dict() | {
                    "message": "The server stopped while this job was " + row.status + "; run it again."
                }
                (ledger.commit if touched else ledger.refund)(conn, row.id)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(
                        status="failed",
                        error=json.dumps(error),
                        data_touched=touched,
                        finished_at=now(),
                        charge_epsilon=row.charge_epsilon if touched else 0,
                        charge_delta=row.charge_delta if touched else 0,
                    )
                )
                audit.append(
                    conn,
                    action="job.recovered",
                    outcome="failed",
                    role="system",
                    job_id=row.id,
                    agreement_id=row.agreement_id,
                    dataset=row.dataset,
                    details={"was": row.status, "charge_kept": touched},
                )
                closed += 1
        return closed

    # -- developer actions ---------------------------------------------------------------------
    def explain(
        self, user: User, *, sql: str, epsilon: float, delta: float | None, agreement_id: str | None
    ) -> dict[str, Any]:
        """Cost and expected accuracy before spending anything; free, and logged."""
        if user.role == "developer":
            with self.store.read() as conn:
                require_licence(conn, user)
        rules = OutputRules()
        if agreement_id:
            with self.store.read() as conn:
                row = agreements.get(conn, user, agreement_id)
            rules = OutputRules(row["min_count"], row["round_to"], row["per_query_epsilon"])
        try:
            plan = compile_or_refuse(sql, self.catalog, epsilon=epsilon, delta=delta, rules=rules)
        except SandboxError as exc:
            with self.store.transaction() as conn:
                audit.append(
                    conn,
                    action="job.explained",
                    outcome="rejected",
                    actor=user.id,
                    role=user.role,
                    agreement_id=agreement_id,
                    details={"sql": sql, "error": exc.to_dict()},
                )
            raise
        with self.store.transaction() as conn:
            audit.append(
                conn,
                action="job.explained",
                actor=user.id,
                role=user.role,
                agreement_id=agreement_id,
                dataset=plan.dataset,
                details={"sql": sql, "epsilon": plan.epsilon, "delta": plan.delta},
            )
        return plan.explain()

    def submit(
        self,
        user: User,
        *,
        sql: str,
        epsilon: float,
        delta: float | None,
        agreement_id: str,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        if user.role != "developer":
            raise Forbidden("Only licensed developers submit jobs.")
        idempotency_key = idempotency_key or None  # an empty key is no key (it is stored, and unique)
        if idempotency_key:
            replay = self._replay(user, idempotency_key, sql, epsilon, delta, agreement_id)
            if replay is not None:
                return replay
        job_id = str(uuid.uuid4())
        base = {
            "id": job_id,
            "developer_id": user.id,
            "sql": sql,
            "epsilon": float(epsilon) if isinstance(epsilon, int | float) else 0.0,
            "delta": delta if isinstance(delta, int | float) else None,
            "created_at": now(),
            "idempotency_key": idempotency_key,
        }
        try:
            with self.store.read() as conn:
                head = agreements.get(conn, user, agreement_id)  # existence and ownership
            # Compiled outside the write transaction, which on SQLite serializes all writers.
            plan = compile_or_refuse(
                sql,
                self.catalog,
                epsilon=epsilon,
                delta=delta,
                rules=OutputRules(head["min_count"], head["round_to"], head["per_query_epsilon"]),
            )
            with self.store.transaction() as conn:
                # An exhausted agreement may still hand out its earlier releases (free).
                touched = {  # public reference tables need no agreement
                    name: list(cols) for name, cols in plan.scope.items() if not self.catalog.get(name).policy.public
                }
                current = agreements.usable(conn, user, agreement_id, touched, allow_exhausted=True)
                if (current.min_count, current.round_to, current.per_query_epsilon) != (
                    head["min_count"],
                    head["round_to"],
                    head["per_query_epsilon"],
                ):
                    raise AgreementInactive(
                        f"Agreement {agreement_id} changed while the query was compiled; submit it again.",
                        agreement_id=agreement_id,
                    )
                key = cache_key(plan, delta)
                earlier = conn.execute(
                    select(jobs)
                    .where(
                        jobs.c.agreement_id == agreement_id,
                        jobs.c.cache_key == key,
                        jobs.c.status == "released",
                        jobs.c.reused_from.is_(None),
                    )
                    .order_by(jobs.c.created_at)
                    .limit(1)
                ).first()
                values = base | {
                    "agreement_id": agreement_id,
                    "dataset": plan.dataset,
                    "cache_key": key,
                    "compiled_sql": plan.aggregate_sql,
                    "epsilon": plan.epsilon,
                    "delta": plan.delta,
                }
                if earlier is not None:
                    conn.execute(
                        insert(jobs).values(
                            **values,
                            status="released",
                            result=earlier.result,
                            result_hash=earlier.result_hash,
                            reused_from=earlier.id,
                            started_at=now(),
                            finished_at=now(),
                        )
                    )
                    audit.append(
                        conn,
                        action="job.reused",
                        actor=user.id,
                        role=user.role,
                        job_id=job_id,
                        agreement_id=agreement_id,
                        dataset=plan.dataset,
                        details={
                            "sql": sql,
                            "reused_from": earlier.id,
                            "result_hash": earlier.result_hash,
                            "charge_epsilon": 0,
                            "charge_delta": 0,
                        },
                    )
                    return self._get(conn, job_id)
                if current.status == "exhausted":
                    raise agreements.exhausted(current)
                limits.check_active_jobs(conn, user.id, self.max_active)  # TooManyJobs: not recorded
                conn.execute(insert(jobs).values(**values, status="queued"))
                eps, dlt = ledger.reserve(
                    conn, agreement_id=agreement_id, job_id=job_id, epsilon=plan.epsilon, delta=plan.delta
                )
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(charge_epsilon=eps, charge_delta=dlt))
                audit.append(
                    conn,
                    action="job.submitted",
                    actor=user.id,
                    role=user.role,
                    job_id=job_id,
                    agreement_id=agreement_id,
                    dataset=plan.dataset,
                    details={
                        "sql": sql,
                        "compiled_sql": plan.aggregate_sql,
                        "epsilon": plan.epsilon,
                        "delta": plan.delta,
                        "reserved_epsilon": eps / EPSILON_UNIT,
                    },
                )
        except _REFUSALS as exc:
            self._record_refusal(user, base, agreement_id, exc)
            raise
        except IntegrityError:  # the same idempotency key, submitted concurrently
            replay = self._replay(user, idempotency_key, sql, epsilon, delta, agreement_id) if idempotency_key else None
            if replay is None:
                raise
            return replay
        with self._lock:
            self._finished[job_id] = threading.Event()
        self._executor.submit(self._run, job_id, plan)
        with self.store.read() as conn:
            return self._get(conn, job_id)

    def _replay(self, user: User, key: str, sql: str, epsilon: object, delta: object, agreement_id: str):
        """The job an idempotency key already names, or None; the same key with another request is
        a client error, not a silent replay."""
        with self.store.read() as conn:
            row = conn.execute(
                select(jobs).where(jobs.c.developer_id == user.id, jobs.c.idempotency_key == key)
            ).first()
        if row is None:
            return None
        same_delta = delta is None or row.delta == delta  # None asked for the default the plan chose
        if (row.sql, row.agreement_id) != (sql, agreement_id if row.agreement_id else None) or (
            row.status != "rejected" and (row.epsilon != epsilon or not same_delta)
        ):
            raise Conflict(
                f"Idempotency-Key {key!r} was used for a different request (job {row.id}); "
                "use a new key for a new request.",
                job_id=row.id,
            )
        return public(row)

    def _record_refusal(self, user: User, base: dict[str, Any], agreement_id: str, exc: SandboxError) -> None:
        """A refused query is a job too (status rejected, no charge), and it is audited."""
        with self.store.transaction() as conn:
            if isinstance(exc, AgreementInactive) and exc.fields.get("status") == "expired":
                agreements.expire(conn, agreement_id)  # recorded even though the job is refused
            exists = conn.execute(
                select(agreement_table.c.id).where(
                    agreement_table.c.id == agreement_id, agreement_table.c.developer_id == user.id
                )
            ).first()
            conn.execute(
                insert(jobs).values(
                    **base,
                    agreement_id=agreement_id if exists else None,
                    status="rejected",
                    error=json.dumps(exc.to_dict(), default=str),
                    finished_at=now(),
                )
            )
            audit.append(
                conn,
                action="job.rejected",
                outcome="rejected",
                actor=user.id,
                role=user.role,
                job_id=base["id"],
                agreement_id=agreement_id if exists else None,
                details={"sql": base["sql"], "code": exc.code, "reason": exc.message},
            )
        exc.fields.setdefault("job_id", base["id"])

    def _run(self, job_id: str, plan: Plan) -> None:
        try:
            with self.store.transaction() as conn:
                started = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == "queued")
                    .values(status="running", started_at=now())
                ).rowcount
            if not started:
                return  # cancelled while queued
            try:
                release = self.engine.execute(plan)
            except QueryFailed as exc:
                self._fail(job_id, exc)
                return
            except Exception:  # never let an unexpected error leak or leave the job running
                self._fail(job_id, QueryFailed(data_touched=True))
                return
            result = release.to_dict() | {
                "columns_noise": [c.__dict__ for c in plan.outputs],
                "notes": list(plan.notes),
            }
            text = json.dumps(result, default=str, sort_keys=True)
            digest = hashlib.sha256(text.encode()).hexdigest()
            with self.store.transaction() as conn:
                row = conn.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).one()
                status = "released" if row.status == "running" else row.status  # cancelled while running
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(
                        status=status,
                        result=text if status == "released" else None,
                        result_hash=digest if status == "released" else None,
                        data_touched=True,
                        finished_at=now(),
                    )
                )
                ledger.commit(conn, job_id)
                audit.append(
                    conn,
                    action="job.released" if status == "released" else "job.cancelled",
                    outcome="ok" if status == "released" else "cancelled",
                    role="system",
                    job_id=job_id,
                    agreement_id=row.agreement_id,
                    dataset=row.dataset,
                    details={
                        "result_hash": digest,
                        "charge_epsilon": row.charge_epsilon / EPSILON_UNIT,
                        "charge_delta": row.charge_delta / DELTA_UNIT,
                        "seconds": round(release.seconds, 4),
                        "accuracy": [c.__dict__ for c in plan.outputs],
                    },
                )
        finally:
            with self._lock:
                event = self._finished.pop(job_id, None)
            if event is not None:
                event.set()

    def _fail(self, job_id: str, exc: QueryFailed) -> None:
        with self.store.transaction() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).one()
            touched = exc.data_touched
            (ledger.commit if touched else ledger.refund)(conn, job_id)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    status="failed" if row.status == "running" else row.status,
                    error=json.dumps(exc.to_dict()),
                    data_touched=touched,
                    finished_at=now(),
                    charge_epsilon=row.charge_epsilon if touched else 0,
                    charge_delta=row.charge_delta if touched else 0,
                )
            )
            audit.append(
                conn,
                action="job.failed",
                outcome="failed",
                role="system",
                job_id=job_id,
                agreement_id=row.agreement_id,
                dataset=row.dataset,
                details={"code": exc.code, "charge_kept": touched},
            )

    def wait(self, user: User, job_id: str, timeout: float) -> dict[str, Any]:
        self.get(user, job_id)  # ownership first: nobody may wait on (and so time) another's job
        with self._lock:
            event = self._finished.get(job_id)
        if event is not None:
            event.wait(timeout)
        return self.get(user, job_id)

    def cancel(self, user: User, job_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self._own(conn, user, job_id, lock=True)
            if row.status in FINAL:
                return public(row)
            if row.status == "queued":
                ledger.refund(conn, job_id)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(status="cancelled", finished_at=now(), charge_epsilon=0, charge_delta=0)
                )
                kept = False
            else:  # running: the worker may already have read data, so the charge stays
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(status="cancelled", finished_at=now()))
                kept = True
            audit.append(
                conn,
                action="job.cancelled",
                outcome="cancelled",
                actor=user.id,
                role=user.role,
                job_id=job_id,
                agreement_id=row.agreement_id,
                dataset=row.dataset,
                details={"was": row.status, "charge_kept": kept},
            )
            return self._get(conn, job_id)

    # -- reading -------------------------------------------------------------------------------
    def get(self, user: User, job_id: str) -> dict[str, Any]:
        with self.store.read() as conn:
            return public(self._own(conn, user, job_id))

    def list(
        self, user: User, *, agreement_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit).offset(offset)
        if user.role == "developer":
            query = query.where(jobs.c.developer_id == user.id)
        if agreement_id:
            query = query.where(jobs.c.agreement_id == agreement_id)
        with self.store.read() as conn:
            return [public(r) for r in conn.execute(query)]

    def _own(self, conn: Connection, user: User, job_id: str, lock: bool = False):
        query = select(jobs).where(jobs.c.id == job_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None or (user.role == "developer" and row.developer_id != user.id):
            raise NotFound(f"No job {job_id}.", job_id=job_id)
        if lock and user.role != "developer":
            raise Forbidden("Only the developer who submitted a job can cancel it.")
        return row

    def _get(self, conn: Connection, job_id: str) -> dict[str, Any]:
        return public(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
