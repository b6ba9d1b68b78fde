"""One exception tree for the whole sandbox.

Every error carries an HTTP ``status``, a stable machine ``code`` and structured fields, and
its message ends with what the user should do instead. Error text never contains values from
private rows.

    SandboxError                      500 internal
    ├── InternalError                 500 internal             (a bug of ours: id of the logged traceback)
    ├── PolicyError                   400 policy_invalid       (file, field, problem)
    ├── ConnectorError                400 connector_failed     (source could not be read)
    │   └── SchemaMismatch            400 schema_mismatch      (data does not match its policy)
    ├── DatasetNotFound               404 dataset_not_found
    ├── SQLRejected                   400 sql_rejected         (construct, line, column, fix)
    ├── InvalidParameter              422 invalid_parameter    (epsilon, delta, ...)
    ├── QueryFailed                   500 query_failed         (generic; data_touched)
    │   ├── QueryTimeout              504 query_timeout
    │   └── ResourceExhausted         507 resource_exhausted
    ├── BudgetExceeded                403 budget_exceeded      (per-query cap)
    ├── BudgetExhausted               403 budget_exhausted     (what is left, how to get more)
    ├── Unauthorized                  401 unauthorized         (missing or unknown token)
    ├── Forbidden                     403 forbidden            (role or ownership)
    ├── NotFound                      404 not_found
    ├── Conflict                      409 conflict             (state transition not allowed)
    ├── AgreementInactive             403 agreement_inactive   (requested, expired, revoked, ...)
    ├── TooManyRequests               429 too_many_requests    (retry_after seconds; Retry-After header)
    │   ├── RateLimited               429 rate_limited         (per-developer submissions per minute)
    │   └── TooManyJobs               429 too_many_jobs        (per-developer queued + running jobs)
    └── PayloadTooLarge               413 payload_too_large    (HTTP body over the limit)
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

__all__ = [
    "InternalError",
    "AgreementInactive",
    "BudgetExceeded",
    "BudgetExhausted",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "TooManyJobs",
    "TooManyRequests",
    "Unauthorized",
    "ConnectorError",
    "DatasetNotFound",
    "InvalidParameter",
    "PolicyError",
    "QueryFailed",
    "QueryTimeout",
    "ResourceExhausted",
    "SQLRejected",
    "SandboxError",
    "SchemaMismatch",
]


class SandboxError(Exception):
    """Base of every error the sandbox raises on purpose."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape every error takes on the wire."""
        return {"code": self.code, "message": self.message, **self.fields}

    def __reduce__(self):  # keep fields when crossing the worker's process boundary
        return (_rebuild, (type(self), self.message, self.fields))


def _rebuild(cls: type[SandboxError], message: str, fields: dict[str, Any]) -> SandboxError:
    err = cls.__new__(cls)
    SandboxError.__init__(err, message, **fields)
    return err


class InternalError(SandboxError):
    """Not the user's doing, and never disguised as a refusal: the unexpected exception is logged
    with its traceback under a new id, which the message names for the operators."""

    @classmethod
    def logged(cls, exc: BaseException) -> InternalError:
        error_id = uuid.uuid4().hex[:12]
        logging.getLogger("sandbox").error("unexpected error %s", error_id, exc_info=exc)
        return cls(f"An unexpected error occurred in the sandbox (error id {error_id}); it has been logged. "
                   "Try again later, and give the operators this id if it persists.", id=error_id)


class PolicyError(SandboxError):
    status, code = 400, "policy_invalid"

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}", file=file, field=field, problem=problem)


class ConnectorError(SandboxError):
    status, code = 400, "connector_failed"


class SchemaMismatch(ConnectorError):
    code = "schema_mismatch"


class DatasetNotFound(SandboxError):
    status, code = 404, "dataset_not_found"


class InvalidParameter(SandboxError):
    status, code = 422, "invalid_parameter"


class SQLRejected(SandboxError):
    """A query outside the validated subset: says what, where, why, and what to write instead."""

    status, code = 400, "sql_rejected"

    def __init__(
        self,
        construct: str,
        reason: str,
        fix: str,
        *,
        rule: str = "",
        line: int | None = None,
        column: int | None = None,
        sql: str | None = None,
    ) -> None:
        where = f" at line {line}, column {column}" if line is not None else ""
        message = f"{construct}{where} is not allowed: {reason}. {fix}"
        pointer = _pointer(sql, line, column) if sql is not None else None
        super().__init__(
            message,
            construct=construct,
            reason=reason,
            fix=fix,
            rule=rule,
            line=line,
            column=column,
            pointer=pointer,
        )


def _pointer(sql: str, line: int | None, column: int | None) -> str | None:
    """The offending line of the user's own SQL with a caret under the position."""
    if line is None or column is None:
        return None
    lines = sql.splitlines() or [""]
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    return f"{text}\n{' ' * max(column - 1, 0)}^"


class QueryFailed(SandboxError):
    """Deliberately generic: engine messages could depend on private data."""

    status, code = 500, "query_failed"

    def __init__(self, message: str = "", *, data_touched: bool) -> None:
        message = message or (
            "The query failed while running inside the sandbox. No result is released"
            + (" and the charge is kept, because data had been read." if data_touched else ".")
            + " Check the query against mock data first."
        )
        super().__init__(message, data_touched=data_touched)

    @property
    def data_touched(self) -> bool:
        return bool(self.fields.get("data_touched"))


class QueryTimeout(QueryFailed):
    status, code = 504, "query_timeout"


class ResourceExhausted(QueryFailed):
    status, code = 507, "resource_exhausted"


class BudgetExceeded(SandboxError):
    status, code = 403, "budget_exceeded"


class BudgetExhausted(SandboxError):
    status, code = 403, "budget_exhausted"


class Unauthorized(SandboxError):
    status, code = 401, "unauthorized"


class Forbidden(SandboxError):
    status, code = 403, "forbidden"


class NotFound(SandboxError):
    status, code = 404, "not_found"


class Conflict(SandboxError):
    status, code = 409, "conflict"


class AgreementInactive(SandboxError):
    status, code = 403, "agreement_inactive"


class TooManyRequests(SandboxError):
    """Refused for now, not for good: `retry_after` (whole seconds) says when to try again, and
    the HTTP response carries it as `Retry-After`."""

    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, **fields: Any) -> None:
        super().__init__(message, retry_after=retry_after, **fields)

    @property
    def retry_after(self) -> int:
        return int(self.fields["retry_after"])


class RateLimited(TooManyRequests):
    code = "rate_limited"


class TooManyJobs(TooManyRequests):
    code = "too_many_jobs"


class PayloadTooLarge(SandboxError):
    status, code = 413, "payload_too_large"
