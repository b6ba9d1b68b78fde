"""Jobs: submit SQL, wait or poll, cancel; `explain` previews cost and accuracy for free."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from sandbox.api.abuse import Submitter
from sandbox.api.deps import Developer, Reader, ServicesDep
from sandbox.api.schemas import ErrorBody, Explanation, JobCreate, JobId, JobPublic, Limit, Offset, QueryRequest
from sandbox.errors import Forbidden

router = APIRouter(tags=["jobs"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                                             422: {"model": ErrorBody}})

Wait = Annotated[float, Query(ge=0, le=600, description="seconds to wait for a queued or running job to finish",
                              examples=[10])]


@router.post("/explain", summary="Plan, charge and expected accuracy, without touching data (free, logged)",
             responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}})
def explain(body: QueryRequest, svc: ServicesDep, developer: Submitter) -> Explanation:
    return Explanation(**svc.jobs.explain(developer, sql=body.sql, epsilon=body.epsilon, delta=body.delta,
                                          agreement_id=body.agreement_id, contribution=_asked(body)))


@router.post("/jobs", status_code=status.HTTP_201_CREATED,
             summary="Submit a query; waits up to `wait` seconds for the release, else poll GET /jobs/{id}",
             responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
def submit(
    body: JobCreate, svc: ServicesDep, developer: Submitter,
    idempotency_key: Annotated[str | None, Header(
        min_length=1, max_length=200, description="a replay returns the same job, charged once",
        examples=["3b7e2c9a-report-2026-q4"])] = None,
) -> JobPublic:
    job = svc.jobs.submit(developer, sql=body.sql, epsilon=body.epsilon, delta=body.delta,
                          agreement_id=body.agreement_id, idempotency_key=idempotency_key,
                          contribution=_asked(body))
    wait = min(body.wait, svc.settings.max_wait_seconds)
    if wait > 0 and job["status"] in ("queued", "running"):
        job = svc.jobs.wait(developer, job["id"], wait)
    return JobPublic(**job)


@router.get("/jobs", summary="Jobs, newest first: a developer's own; all for auditors")
def list_jobs(
    svc: ServicesDep, user: Reader,
    agreement_id: Annotated[str | None, Query(description="only this agreement's jobs",
                                              examples=["6f1c3c1e-5d0b-4b8e-9a51-6a1e7c1f2d3a"])] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[JobPublic]:
    _no_operators(user)
    return [JobPublic(**j) for j in svc.jobs.list(user, agreement_id=agreement_id, limit=limit, offset=offset)]


@router.get("/jobs/{job_id}", summary="One job and, once released, its result", responses={404: {"model": ErrorBody}})
def get_job(job_id: JobId, svc: ServicesDep, user: Reader, wait: Wait = 0) -> JobPublic:
    _no_operators(user)
    if wait:
        return JobPublic(**svc.jobs.wait(user, job_id, min(wait, svc.settings.max_wait_seconds)))
    return JobPublic(**svc.jobs.get(user, job_id))


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job (its owner)",
             responses={404: {"model": ErrorBody}})
def cancel(job_id: JobId, svc: ServicesDep, developer: Developer) -> JobPublic:
    return JobPublic(**svc.jobs.cancel(developer, job_id))


def _asked(body: QueryRequest) -> dict | None:
    return body.contribution.model_dump(exclude_none=True) if body.contribution is not None else None


def _no_operators(user) -> None:
    if user.role in ("operator", "admin"):
        raise Forbidden(f"Job results are for their developers and for auditors; you are signed in as {user.role}, "
                        "who decides agreements (see GET /agreements).")
