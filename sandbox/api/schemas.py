"""Request and response models: a Create / Public family per resource, with examples, so the
OpenAPI document is complete enough to generate a client from."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_FORBID = ConfigDict(extra="forbid")
_ID = "6f1c3c1e-5d0b-4b8e-9a51-6a1e7c1f2d3a"


def iso_moment(value: str) -> str:
    """A validity bound or a filter time, written the way the store writes times so that they
    compare correctly as text: a date stays `YYYY-MM-DD` (it sorts before every time of that day);
    a date-time becomes fixed-width UTC (`2026-12-31T10:00:00.000000Z`); no zone means UTC."""
    text = value.strip()
    try:
        if "T" not in text and " " not in text:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 date or date-time; write e.g. 2026-12-31 "
                         "or 2026-12-31T18:00:00+08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Moment = Annotated[str, AfterValidator(iso_moment)]

# Path and query parameters shared by the routers.
AgreementId = Annotated[str, Path(description="an agreement's id", examples=[_ID])]
JobId = Annotated[str, Path(description="a job's id", examples=[_ID])]
LicenceId = Annotated[str, Path(description="a licence's id", examples=[_ID])]
DatasetName = Annotated[str, Path(description="a registered dataset", examples=["residents"])]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size", examples=[100])]
# Bounded so that the database can take it (SQLite and PostgreSQL integers are 64-bit).
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip", examples=[0])]
# The ledger counts epsilon in nano-epsilon: a smaller positive epsilon could not be charged.
MIN_EPSILON = 1e-9


class ErrorDetail(BaseModel):
    code: str = Field(examples=["sql_rejected"])
    message: str = Field(
        examples=["SELECT * at line 1, column 8 is not allowed: it would output rows. Select aggregates."])
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str = Field(examples=["0.1.0"])
    datasets: int = Field(description="registered datasets", examples=[7])


class PrivacyUnitPublic(BaseModel):
    column: str = Field(examples=["person_id"])
    max_rows: int = Field(description="rows one unit may contribute to a query", examples=[1])
    max_groups: int = Field(description="groups one unit may contribute to", examples=[1])


class ColumnPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["identifier", "dimension", "measure"] = Field(examples=["measure"])
    type: str = Field(examples=["DOUBLE"])
    description: str = ""
    bounds: list[float] | list[date] | None = Field(
        default=None,
        description="public bounds: clamping bounds of a number, the range of a date",
        examples=[[0, 100000]],
    )
    keys: list[Any] | None = Field(default=None, description="public group keys", examples=[["F", "M"]])
    nullable: bool = False


class QueryLimitsPublic(BaseModel):
    max_epsilon_per_query: float = Field(examples=[1.0])
    min_count: int = Field(description="noisy counts below this are suppressed", examples=[10])
    round_to: int = Field(description="released counts are rounded to this", examples=[1])


class Certificate(BaseModel):
    """A data asset certificate: one registration of a dataset, signed with the sandbox's Ed25519
    key over MESSAGE_PREFIX + canonical JSON of every field but `algorithm` and `signature`."""

    dataset: str = Field(examples=["residents"])
    owner: str
    policy_sha256: str = Field(description="sha256 of the canonical JSON of the policy as registered")
    snapshot_sha256: str = Field(description="sha256 of the managed data file queries are answered from")
    rows: int = Field(description="the size class (a public power-of-two bound); exact for public data")
    units: int | None = Field(description="noisy unit count from the released DP metadata, two significant digits")
    size_note: str
    issued_at: str
    version: int = Field(description="1, 2, ...: one per registration that changed the policy or the data")
    previous: str = Field(description="sha256 of the previous version's message and signature (zeros for the first)")
    key_id: str = Field(description="sha256 of the raw Ed25519 public key")
    algorithm: Literal["Ed25519"]
    signature: str


class CertificateChain(BaseModel):
    certificates: list[Certificate] = Field(description="every version, oldest first")
    public_key: str = Field(description="PEM; compare its key_id with the one you keep before trusting it")
    key_id: str
    message_prefix: str


class DatasetPublic(BaseModel):
    """A dataset's schema and policy: never rows; of the data, only a public size class and the DP
    statistics released once from the policy's metadata allowance."""

    name: str = Field(examples=["residents"])
    title: str = Field(examples=["Resident registry (demo)"])
    description: str
    title_zh: str | None = Field(default=None, description="the title in Chinese, if the policy has one",
                                 examples=["居民户籍登记（演示）"])
    description_zh: str | None = Field(default=None, description="the description in Chinese, if the policy has one")
    owner: str = Field(examples=["Xiamen Municipal Public Security Bureau"])
    domain: str | None = Field(examples=["person"])
    public: bool = Field(description="public data: no privacy unit, queried without noise")
    privacy_unit: PrivacyUnitPublic | None
    columns: dict[str, ColumnPublic]
    limits: QueryLimitsPublic
    default_delta: float = Field(examples=[1e-7])
    registered_at: str | None
    size_class: int | None = Field(
        default=None, description="public upper bound on rows, a power of two fixed at registration", examples=[32768]
    )
    metadata_epsilon: float | None = Field(
        default=None, description="epsilon spent once, at registration, on the DP statistics below", examples=[0.2]
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="DP statistics (rows per unit, values beyond the bounds) releases estimate bias from"
    )
    warnings: list[str] = Field(default_factory=list, description="advice for the data steward")
    certificate: Certificate | None = Field(default=None, description="the latest signed data asset certificate "
                                            "(GET /datasets/{name}/certificate: every version and the public key)")


class UserPublic(BaseModel):
    id: str
    name: str
    role: Literal["developer", "operator", "auditor", "admin", "steward"]
    organisation: str | None = Field(default=None, description="a data steward's organisation: the owner named "
                                     "in the dataset policies they decide for")


class UserListed(UserPublic):
    active: bool
    created_at: str


class UserCreate(BaseModel):
    model_config = _FORBID
    name: str = Field(min_length=1, max_length=200, examples=["Audit Office"])
    role: Literal["operator", "auditor", "steward"] = Field(examples=["auditor"])
    organisation: str | None = Field(default=None, max_length=200, description="a steward's organisation, exactly "
                                     "as the dataset policies name their owner",
                                     examples=["Xiamen Municipal Health Commission"])


class UserCreated(UserPublic):
    token: str = Field(description="shown once; store it safely", examples=["sbx_3q2..."])


class LicenceCreate(BaseModel):
    model_config = _FORBID
    name: str = Field(min_length=1, max_length=200, examples=["Dr. Lin Wei"])
    organisation: str = Field(min_length=1, max_length=200, examples=["Xiamen University"])
    licence_number: str = Field(min_length=1, max_length=100, examples=["XM-DEV-2026-001"])
    valid_from: Moment = Field(description="ISO-8601 date or date-time (UTC if no zone)", examples=["2026-01-01"])
    valid_to: Moment = Field(description="exclusive", examples=["2027-01-01"])


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
    status_reason: str | None = Field(default=None, description="the operator's reason for the last suspension "
                                      "or reinstatement")


class LicenceCreated(BaseModel):
    licence: LicencePublic
    developer: UserPublic
    token: str = Field(description="the developer's bearer token, shown once")


class Reason(BaseModel):
    model_config = _FORBID
    reason: str = Field(min_length=1, max_length=2000, examples=["purpose does not match the legal basis"])


class AgreementRequest(BaseModel):
    """A request for a data-use agreement. Being listed is a condition of access: once approved, its
    organisation, purpose, legal basis, datasets, validity, status, budget granted and spent and
    number of releases are published in the public register (`/register`, `GET /api/register`)."""

    model_config = _FORBID
    purpose: str = Field(min_length=1, max_length=5000, examples=["Income inequality across districts"])
    legal_basis: str = Field(min_length=1, max_length=2000,
                             examples=["Public-interest research, Data Regulation art. 12"])
    datasets: dict[str, list[str] | None] = Field(
        description="dataset -> columns in scope (null: every queryable column)",
        examples=[{"residents": None, "social_insurance": ["month", "contribution"]}])
    valid_from: Moment = Field(description="ISO-8601 date or date-time (UTC if no zone)", examples=["2026-01-01"])
    valid_to: Moment = Field(description="exclusive", examples=["2026-12-31"])
    epsilon: float = Field(gt=0, le=100, examples=[5.0])
    delta: float = Field(default=1e-6, ge=0, lt=1e-3, examples=[1e-6])


class AgreementApprove(BaseModel):
    model_config = _FORBID
    epsilon: float | None = Field(default=None, gt=0, le=100, description="at most the requested", examples=[2.0])
    delta: float | None = Field(default=None, ge=0, lt=1e-3, examples=[1e-6])
    per_query_epsilon: float | None = Field(default=None, gt=0, examples=[0.5])
    datasets: dict[str, list[str] | None] | None = Field(
        default=None, description="narrower scope, optional", examples=[{"residents": ["district", "age"]}])
    valid_to: Moment | None = Field(default=None, description="an earlier end, optional", examples=["2026-06-30"])
    min_count: int = Field(default=0, ge=0, examples=[10])
    round_to: int = Field(default=1, ge=1, examples=[5])
    reason: str = Field(default="", max_length=2000, examples=["approved with half the requested budget"])


class AgreementAmend(BaseModel):
    """An operator's amendment of an agreement in force (or ended by its budget or end date): give
    what changes, and why. A budget is a new total (`epsilon`, `delta`) or a top-up (`epsilon_add`,
    `delta_add`), never below what is spent; a scope stays within what the developer requested."""

    model_config = _FORBID
    reason: str = Field(min_length=1, max_length=2000, examples=["second phase of the study"])
    epsilon: float | None = Field(default=None, gt=0, le=100, description="the new total budget", examples=[4.0])
    epsilon_add: float | None = Field(default=None, gt=0, le=100, description="added to the budget", examples=[1.0])
    delta: float | None = Field(default=None, ge=0, lt=1e-3, description="the new total delta", examples=[1e-5])
    delta_add: float | None = Field(default=None, gt=0, lt=1e-3, description="added to delta", examples=[1e-6])
    per_query_epsilon: float | None = Field(default=None, gt=0, examples=[0.5])
    valid_to: Moment | None = Field(default=None, description="a new end (later extends it; exclusive)",
                                    examples=["2027-06-30"])
    datasets: dict[str, list[str] | None] | None = Field(
        default=None, description="a new scope within the requested one (null columns: as requested)",
        examples=[{"residents": ["district", "age", "monthly_income"]}])


class DatasetPart(BaseModel):
    """A private dataset's part of an agreement: its owner's data steward's decision and limits."""

    agreement_id: str
    dataset: str = Field(examples=["medical_visits"])
    owner: str = Field(examples=["Xiamen Municipal Health Commission"])
    status: Literal["pending", "approved", "rejected", "delegated"] = Field(
        description="delegated: the owner had no steward when the request was made; the operator's decision stands")
    budget_epsilon: float | None = Field(description="the steward's budget for this dataset (null: the agreement's)")
    spent_epsilon: float = Field(description="epsilon charged to this dataset under the agreement")
    columns: list[str] | None = Field(description="the steward's columns (null: the agreement's)")
    valid_to: str | None = Field(description="the steward's end (null: the agreement's)")
    min_count: int | None = Field(default=None, description="the steward's minimum count for queries that read "
                                  "this dataset (null: the agreement's and the policy's)")
    round_to: int | None = Field(default=None, description="the steward's rounding of counts (null: the "
                                 "agreement's and the policy's)")
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    suspended: bool
    suspended_at: str | None
    suspended_by: str | None
    suspend_reason: str | None


class StewardPart(DatasetPart):
    """A part in a steward's queue, with what the steward needs to decide it."""

    purpose: str
    legal_basis: str
    agreement_status: str
    valid_from: str
    agreement_valid_to: str
    requested_epsilon: float
    requested_columns: list[str] | None
    created_at: str


class PartApprove(BaseModel):
    """A steward's approval of their dataset's part, possibly narrower than requested."""

    model_config = _FORBID
    epsilon: float | None = Field(default=None, gt=0, le=100, description="a budget for this dataset (at most the "
                                  "requested epsilon; null: the agreement's alone)", examples=[1.0])
    columns: list[str] | None = Field(default=None, description="fewer columns (null: as requested)",
                                      examples=[["district", "cost"]])
    valid_to: Moment | None = Field(default=None, description="an earlier end for this dataset",
                                    examples=["2026-09-30"])
    min_count: int | None = Field(default=None, ge=1, le=1_000_000, description="suppress counts below this in "
                                  "every query that reads this dataset (the strictest rule wins)", examples=[20])
    round_to: int | None = Field(default=None, ge=1, le=1_000_000, description="round counts to a multiple of "
                                 "this in every query that reads this dataset", examples=[10])
    reason: str = Field(default="", max_length=2000, examples=["approved for district-level statistics"])


class Suspension(BaseModel):
    model_config = _FORBID
    reason: str = Field(min_length=1, max_length=2000, examples=["records under correction"])
    agreement_id: str | None = Field(default=None, description="one agreement (null: every agreement using it)",
                                     examples=[_ID])


class RegisterEntry(BaseModel):
    """One approved agreement as the public register shows it: nothing else."""

    model_config = ConfigDict(extra="forbid")
    id: str
    organisation: str | None = Field(examples=["Xiamen University"])
    purpose: str
    legal_basis: str
    datasets: list[str] = Field(examples=[["medical_visits", "residents"]])
    valid_from: str
    valid_to: str
    status: Literal["awaiting", "active", "exhausted", "expired", "revoked"]
    budget_epsilon: float
    budget_delta: float
    spent_epsilon: float
    spent_delta: float
    releases: int = Field(description="results released under the agreement (a reused release counts once)")


class AgreementPublic(BaseModel):
    id: str
    developer_id: str
    status: Literal["requested", "awaiting", "active", "rejected", "revoked", "expired", "exhausted"] = Field(
        description="awaiting: approved by the operator, waiting for the data stewards of its datasets")
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
    decided_by: str | None = Field(description="who made the last decision (approve, reject, revoke, amend)")
    decision_reason: str | None
    decided_at: str | None = Field(default=None, description="when the last decision was made")
    requested_datasets: dict[str, list[str] | None] = Field(
        default_factory=dict, description="the scope as requested: an amendment may widen `datasets` up to it")
    created_at: str
    updated_at: str
    parts: list[DatasetPart] | None = Field(default=None, description="one agreement: each private dataset's "
                                            "part, decided by its owner's data steward")
    developer_name: str | None = Field(default=None, description="in lists: the developer's name")
    organisation: str | None = Field(default=None, description="in lists: the developer's organisation")


class ContributionRequest(BaseModel):
    """Contribution bounds for one query, within the policies' ceilings: fewer rows per unit of a
    dataset, fewer groups per unit, or tighter clamping bounds for a measure. Less noise, more
    left out; `POST /explain` shows both for every choice before anything is spent."""

    model_config = _FORBID
    max_rows: dict[str, int] | None = Field(
        default=None, description="rows per unit, by dataset (1 to its ceiling)", examples=[{"medical_visits": 10}]
    )
    max_groups: int | None = Field(default=None, ge=1, description="groups one unit may reach", examples=[2])
    clamp: dict[str, tuple[float, float]] | None = Field(
        default=None,
        description="clamping bounds inside a measure's public bounds, by dataset.column",
        examples=[{"residents.monthly_income": [0, 50000]}],
    )


class QueryRequest(BaseModel):
    model_config = _FORBID
    sql: str = Field(min_length=1, max_length=20_000,
                     examples=["SELECT district, COUNT(*), AVG(monthly_income) FROM residents GROUP BY district"])
    # Strict: a JSON number only (not true, not "0.5"), so a typo cannot turn into a charge.
    epsilon: float = Field(ge=MIN_EPSILON, le=10, strict=True, examples=[0.5])
    delta: float | None = Field(default=None, gt=0, lt=1e-3, strict=True, examples=[1e-7],
                                description="for private GROUP BY keys; default: the dataset's")
    agreement_id: str | None = Field(default=None, max_length=36, description="applies its output rules and cap",
                                     examples=[_ID])
    contribution: ContributionRequest | None = Field(
        default=None,
        description="contribution bounds for this query; default: the policies' ceilings",
        examples=[{"max_rows": {"medical_visits": 10}}],
    )


class JobCreate(QueryRequest):
    agreement_id: str = Field(max_length=36, description="the agreement whose budget pays", examples=[_ID])
    wait: float = Field(default=10.0, ge=0, le=600, strict=True,
                        description="seconds to wait for the result before returning",
                        examples=[10.0])


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
    lower: list[list[float | None]] = Field(
        default_factory=list, description="95% interval per cell, covering noise and estimated bias: lower end"
    )
    upper: list[list[float | None]] = Field(default_factory=list, description="... and upper end (null: unbounded)")
    suppressed: list[bool]
    epsilon: float
    delta: float
    notes: list[str] = Field(
        default_factory=list, description="what a reader must know: rows left out, values clamped, missing groups"
    )
    note_details: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the same notes as data, in the same order: {key, ...values} (sandbox/notes.py), for readers "
                    "of other languages",
    )
    bias: list[dict[str, Any]] = Field(
        default_factory=list, description="estimated share of rows left out and of values clamped, per dataset"
    )


class JobPublic(BaseModel):
    id: str
    developer_id: str
    agreement_id: str | None
    dataset: str | None
    sql: str
    compiled_sql: str | None
    epsilon: float
    delta: float | None
    contribution: dict[str, Any] | None = Field(default=None, description="the contribution bounds asked for")
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
    """What `GET /audit/verify` found. A failing budget check names its agreement in `reason`
    (the library's `audit.Verification` also has `kind` and `agreement_id`; they join this shape
    once `sandbox.client`, which builds its Verification from exactly these fields, accepts more)."""

    ok: bool
    events: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = Field(0, description="signed checkpoints that check out against the chain")
    last_checkpoint_seq: int | None = Field(None, description="the last event a good checkpoint signs")
    last_checkpoint_ts: str | None = None
    unsigned_events: int = Field(0, description="events after the last good checkpoint (chained, not yet signed)")
    signing_key: str | None = Field(None, description="key id (sha256 of the Ed25519 public key) that signed them")


class Checkpoint(BaseModel):
    n: int
    seq: int = Field(description="the audit event whose chain hash is signed")
    hash: str
    ts: str
    prev: str = Field(description="sha256(message + signature) of checkpoint n - 1; 64 zeros for the first")
    key_id: str
    signature: str = Field(description="Ed25519 signature, hex")


class CheckpointExport(BaseModel):
    """Keep this (and the key id) outside the sandbox: `sandbox audit verify --checkpoints FILE`
    checks a later log against it."""

    algorithm: str = Field(examples=["Ed25519"])
    key_id: str | None
    public_key: str | None = Field(description="PEM (SubjectPublicKeyInfo)")
    message: str
    message_prefix: str
    checkpoints: list[Checkpoint]
