"""Jobs: submit SQL, wait or poll, cancel; `explain` previews cost and accuracy for free."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, status

from sandbox.api.deps import Developer, Reader, ServicesDep
from sandbox.api.schemas import ErrorBody, Explanation, JobCreate, JobPublic, QueryRequest
from sandbox.errors import Forbidden

router = APIRouter(tags=["jobs"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})


@router.post("/explain", summary="Plan, charge and expected accuracy, without touching data (free, logged)",
             responses={400: {"model": ErrorBody}})
def explain(body: QueryRequest, svc: ServicesDep, developer: Developer) -> Explanation:
    return Explanation(**svc.jobs.explain(developer, sql=body.sql, epsilon=body.epsilon, delta=body.delta,
                                          agreement_id=body.agreement_id))


@router.post("/jobs", status_code=status.HTTP_201_CREATED,
             summary="Submit a query; waits up to `wait` seconds for the release, else poll GET /jobs/{id}",
             responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}})
def submit(
    body: JobCreate, svc: ServicesDep, developer: Developer,
    idempotency_key: str | None = Header(None, max_length=200, description="a replay returns the same job, charged once"),
) -> JobPublic:
    job = svc.jobs.submit(developer, sql=body.sql, epsilon=body.epsilon, delta=body.delta,
                          agreement_id=body.agreement_id, idempotency_key=idempotency_key)
    wait = min(body.wait, svc.settings.max_wait_seconds)
    if wait > 0 and job["status"] in ("queued", "running"):
        job = svc.jobs.wait(developer, job["id"], wait)
    return JobPublic(**job)


@router.get("/jobs", summary="Jobs: a developer's own; all for auditors")
def list_jobs(svc: ServicesDep, user: Reader, agreement_id: str | None = None,
              limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> list[JobPublic]:
    _no_operators(user)
    return [JobPublic(**j) for j in svc.jobs.list(user, agreement_id=agreement_id, limit=limit, offset=offset)]


@router.get("/jobs/{job_id}", summary="One job and, once released, its result", responses={404: {"model": ErrorBody}})
def get_job(job_id: str, svc: ServicesDep, user: Reader, wait: float = Query(0, ge=0, le=600)) -> JobPublic:
    _no_operators(user)
    if wait:
        return JobPublic(**svc.jobs.wait(user, job_id, min(wait, svc.settings.max_wait_seconds)))
    return JobPublic(**svc.jobs.get(user, job_id))


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job (its owner)",
             responses={404: {"model": ErrorBody}})
def cancel(job_id: str, svc: ServicesDep, developer: Developer) -> JobPublic:
    return JobPublic(**svc.jobs.cancel(developer, job_id))


def _no_operators(user) -> None:
    if user.role in ("operator", "admin"):
        raise Forbidden("Operators decide agreements; job results are for their developers and auditors.")
