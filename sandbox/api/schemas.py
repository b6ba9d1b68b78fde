"""Request and response models: a Create / Public family per resource, with examples, so the
OpenAPI document is complete enough to generate a client from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_FORBID = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["sql_rejected"])
    message: str = Field(examples=["SELECT * at line 1, column 8 is not allowed: it would output rows. Select aggregates."])
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    datasets: int


class UserPublic(BaseModel):
    id: str
    name: str
    role: Literal["developer", "operator", "auditor", "admin"]


class UserCreate(BaseModel):
    model_config = _FORBID
    name: str = Field(min_length=1, max_length=200, examples=["Audit Office"])
    role: Literal["operator", "auditor"] = Field(examples=["auditor"])


class UserCreated(UserPublic):
    token: str = Field(description="shown once; store it safely", examples=["sbx_3q2..."])


class LicenceCreate(BaseModel):
    model_config = _FORBID
    name: str = Field(min_length=1, max_length=200, examples=["Dr. Lin Wei"])
    organisation: str = Field(min_length=1, max_length=200, examples=["Xiamen University"])
    licence_number: str = Field(min_length=1, max_length=100, examples=["XM-DEV-2026-001"])
    valid_from: str = Field(examples=["2026-01-01"])
    valid_to: str = Field(examples=["2027-01-01"])


class LicencePublic(BaseModel):
    id: str
    user_id: str
    organisation: str
    licence_number: str
    valid_from: str
    valid_to: str
    status: Literal["active", "suspended"]
    created_by: str
    created_at: str


class LicenceCreated(BaseModel):
    licence: LicencePublic
    developer: UserPublic
    token: str = Field(description="the developer's bearer token, shown once")


class Reason(BaseModel):
    model_config = _FORBID
    reason: str = Field(min_length=1, max_length=2000, examples=["purpose does not match the legal basis"])


class AgreementRequest(BaseModel):
    model_config = _FORBID
    purpose: str = Field(min_length=1, max_length=5000, examples=["Income inequality across districts"])
    legal_basis: str = Field(min_length=1, max_length=2000, examples=["Public-interest research, Data Regulation art. 12"])
    datasets: dict[str, list[str] | None] = Field(
        description="dataset -> columns in scope (null: every queryable column)",
        examples=[{"residents": None, "social_insurance": ["month", "contribution"]}])
    valid_from: str = Field(examples=["2026-01-01"])
    valid_to: str = Field(examples=["2026-12-31"])
    epsilon: float = Field(gt=0, le=100, examples=[5.0])
    delta: float = Field(default=1e-6, ge=0, lt=1e-3, examples=[1e-6])


class AgreementApprove(BaseModel):
    model_config = _FORBID
    epsilon: float | None = Field(default=None, gt=0, le=100, description="at most the requested", examples=[2.0])
    delta: float | None = Field(default=None, ge=0, lt=1e-3, examples=[1e-6])
    per_query_epsilon: float | None = Field(default=None, gt=0, examples=[0.5])
    datasets: dict[str, list[str] | None] | None = Field(default=None, description="narrower scope, optional")
    valid_to: str | None = Field(default=None, examples=["2026-06-30"])
    min_count: int = Field(default=0, ge=0, examples=[10])
    round_to: int = Field(default=1, ge=1, examples=[5])
    reason: str = Field(default="", max_length=2000, examples=["approved with half the requested budget"])


class AgreementPublic(BaseModel):
    id: str
    developer_id: str
    status: Literal["requested", "active", "rejected", "revoked", "expired", "exhausted"]
    purpose: str
    legal_basis: str
    datasets: dict[str, list[str] | None]
    valid_from: str
    valid_to: str
    requested_epsilon: float
    requested_delta: float
    budget_epsilon: float
    budget_delta: float
    spent_epsilon: float
    spent_delta: float
    remaining_epsilon: float
    remaining_delta: float
    per_query_epsilon: float | None
    min_count: int
    round_to: int
    decided_by: str | None
    decision_reason: str | None
    created_at: str
    updated_at: str


class QueryRequest(BaseModel):
    model_config = _FORBID
    sql: str = Field(min_length=1, max_length=20_000,
                     examples=["SELECT district, COUNT(*), AVG(monthly_income) FROM residents GROUP BY district"])
    epsilon: float = Field(gt=0, le=10, examples=[0.5])
    delta: float | None = Field(default=None, gt=0, lt=1e-3, description="for private GROUP BY keys; default: the dataset's")
    agreement_id: str | None = Field(default=None, max_length=36, examples=["1f0e..."])


class JobCreate(QueryRequest):
    agreement_id: str = Field(max_length=36, examples=["1f0e..."])
    wait: float = Field(default=10.0, ge=0, le=600, description="seconds to wait for the result before returning")


class Explanation(BaseModel):
    model_config = ConfigDict(extra="allow")
    dataset: str
    epsilon: float
    delta: float
    bounded_sql: str
    columns: list[dict[str, Any]]
    primitives: list[dict[str, Any]]


class Release(BaseModel):
    model_config = ConfigDict(extra="allow")
    columns: list[str]
    rows: list[list[Any]]
    half_widths: list[list[float | None]] = Field(description="95% interval half-width per cell; null if none")
    suppressed: list[bool]
    epsilon: float
    delta: float


class JobPublic(BaseModel):
    id: str
    developer_id: str
    agreement_id: str | None
    dataset: str | None
    sql: str
    compiled_sql: str | None
    epsilon: float
    delta: float | None
    status: Literal["queued", "running", "released", "rejected", "failed", "cancelled"]
    error: dict[str, Any] | None
    result: Release | None
    result_hash: str | None
    charge_epsilon: float
    charge_delta: float
    reused: bool
    reused_from: str | None
    data_touched: bool
    created_at: str
    started_at: str | None
    finished_at: str | None


class AuditEvent(BaseModel):
    seq: int
    ts: str
    actor: str | None
    role: str | None
    action: str = Field(examples=["job.released"])
    outcome: str = Field(examples=["ok"])
    agreement_id: str | None
    dataset: str | None
    job_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    events: list[AuditEvent]
    total: int
    limit: int
    offset: int


class Verification(BaseModel):
    ok: bool
    events: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
