"""Dataset policies: the declarative contract between a data owner and the sandbox.

A policy says what a dataset is, where it comes from, who its privacy unit is, what each column
may be used for (and with which public bounds or keys), and which limits apply to every query.
Operators read and review these files; the compiler derives every sensitivity from them.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sandbox.errors import PolicyError

__all__ = [
    "Column",
    "Policy",
    "PrivacyUnit",
    "QueryLimits",
    "Role",
    "Source",
    "load_policies",
    "load_policy",
]

NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "FLOAT"}
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT"}
TYPES = NUMERIC_TYPES | {"BOOLEAN", "VARCHAR", "DATE", "TIMESTAMP"}
_ALIASES = {
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "LONG": "BIGINT",
    "SHORT": "SMALLINT",
    "REAL": "FLOAT",
    "FLOAT4": "FLOAT",
    "FLOAT8": "DOUBLE",
    "NUMERIC": "DOUBLE",
    "STRING": "VARCHAR",
    "TEXT": "VARCHAR",
    "BOOL": "BOOLEAN",
    "DATETIME": "TIMESTAMP",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Role(StrEnum):
    identifier = "identifier"  # never output, never grouped by (except COUNT(DISTINCT unit))
    dimension = "dimension"  # may be grouped by; public `keys` make the group set public
    measure = "measure"  # numeric, aggregated after clamping to public `bounds`
    hidden = "hidden"  # not queryable at all


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    role: Role
    type: str
    description: str = ""
    # Public bounds: numbers clamp aggregated values; for a DATE dimension, the range its values
    # are published to lie in (so date_trunc/YEAR keys over it form a public key set).
    bounds: tuple[float, float] | tuple[date, date] | None = None
    keys: tuple[Any, ...] | None = None
    nullable: bool = False
    # Declared (and verified at registration): every unit has one value. Grouping by such columns
    # needs no max_groups pass and counts each unit in one group. Declared, never inferred: a
    # sensitivity must not depend on the data.
    constant_per_unit: bool = False

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> str:
        name = str(value).strip().upper()
        name = _ALIASES.get(name, name)
        if name not in TYPES:
            raise ValueError(f"unknown type {value!r}; use one of {', '.join(sorted(TYPES))}")
        return name

    @field_validator("bounds", mode="before")
    @classmethod
    def _typed_bounds(cls, value: Any, info: Any) -> Any:
        """Dates for a DATE column (ISO text in YAML), numbers otherwise."""
        kind = _ALIASES.get(str(info.data.get("type", "")).strip().upper(), str(info.data.get("type", "")).upper())
        if value is None or kind != "DATE":
            return value
        try:
            return tuple(v if isinstance(v, date) else date.fromisoformat(str(v)) for v in value)
        except (TypeError, ValueError):
            raise ValueError("bounds of a DATE column are two dates, e.g. [2020-01-01, 2025-12-31]") from None

    @field_validator("bounds")
    @classmethod
    def _ordered_bounds(cls, value: tuple | None) -> tuple | None:
        if value is None:
            return value
        lo, hi = value
        if isinstance(lo, date):
            if lo >= hi:
                raise ValueError(f"bounds are reversed or empty ([{lo}, {hi}]); write [first, last] with first < last")
            return value
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("bounds must be finite numbers")
        if lo >= hi:
            raise ValueError(f"bounds are reversed or empty ([{lo}, {hi}]); write [low, high] with low < high")
        return value

    @model_validator(mode="after")
    def _role_rules(self) -> Column:
        if self.role is Role.measure and self.bounds is None:
            raise ValueError("a measure needs public `bounds: [low, high]` to clamp its values")
        if self.bounds is not None and self.type not in NUMERIC_TYPES | {"DATE"}:
            raise ValueError(f"`bounds` only apply to numeric and DATE columns, not {self.type}")
        if self.bounds is not None and (self.type == "DATE") != isinstance(self.bounds[0], date):
            raise ValueError("`bounds` of a DATE column are dates; of a numeric column, numbers")
        if self.type == "DATE" and self.bounds is not None and self.role is not Role.dimension:
            raise ValueError("only a DATE dimension may declare `bounds`")
        if self.keys is not None:
            if self.role is not Role.dimension:
                raise ValueError("only a dimension may declare public `keys`")
            if len(self.keys) == 0 or len(set(self.keys)) != len(self.keys):
                raise ValueError("`keys` must be a non-empty list without duplicates")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    @property
    def is_integer(self) -> bool:
        return self.type in INTEGER_TYPES

    @property
    def aggregable(self) -> bool:
        """SUM/AVG/quantiles need public bounds; identifiers and hidden columns never qualify."""
        return self.bounds is not None and self.is_numeric and self.role in (Role.measure, Role.dimension)


class PrivacyUnit(_Strict):
    column: str
    max_rows: int = Field(ge=1, description="rows one unit may contribute to a query")
    max_groups: int = Field(default=1, ge=1, description="groups one unit may contribute to")


class Source(_Strict):
    kind: str
    location: str
    table: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class QueryLimits(_Strict):
    """A dataset's limits on every query (the policy's `limits:` key)."""

    max_epsilon_per_query: float = Field(default=1.0, gt=0, le=10)
    min_count: int = Field(default=0, ge=0, description="noisy counts below this are suppressed")
    round_to: int = Field(default=1, ge=1, description="released counts are rounded to this")


class Policy(_Strict):
    name: str
    title: str
    description: str
    owner: str
    domain: str | None = None
    public: bool = False
    source: Source
    privacy_unit: PrivacyUnit | None = None
    columns: dict[str, Column]
    limits: QueryLimits = QueryLimits()
    default_delta: float = Field(default=1e-7, gt=0, lt=1e-3)
    # Spent once, at registration, on dataset-wide DP statistics (rows per unit, values beyond the
    # bounds) from which every release estimates the bias of its bounding and clamping
    # (sandbox/metadata.py). Shown in the catalog; 0 switches the statistics off.
    metadata_epsilon: float = Field(default=0.2, ge=0, le=1)

    @field_validator("name")
    @classmethod
    def _identifier_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits and underscores, starting with a letter")
        return value

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: dict[str, Column]) -> dict[str, Column]:
        if not value:
            raise ValueError("declare at least one column")
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"column name {name!r}: use lower-case letters, digits, underscores")
        return value

    @model_validator(mode="after")
    def _unit_is_declared(self) -> Policy:
        # Model-level checks name their field as "<field>: <problem>"; load_policy splits it off.
        if self.public:
            if self.privacy_unit is not None:
                raise ValueError("privacy_unit: a public dataset has no privacy_unit; remove it or set public: false")
            return self
        if self.privacy_unit is None:
            raise ValueError("privacy_unit: required (or set public: true for reference data)")
        unit = self.privacy_unit.column
        if unit not in self.columns:
            raise ValueError(
                f"privacy_unit.column: {unit!r} is not among the declared columns "
                f"({', '.join(self.columns)}); declare it with role: identifier"
            )
        if self.columns[unit].role is not Role.identifier:
            raise ValueError(f"privacy_unit.column: {unit!r} must have role: identifier")
        return self

    # -- conveniences used by the compiler and catalog -------------------------------------
    @property
    def unit(self) -> str:
        assert self.privacy_unit is not None
        return self.privacy_unit.column

    def queryable(self) -> dict[str, Column]:
        return {n: c for n, c in self.columns.items() if c.role is not Role.hidden}

    def resolve_location(self, policy_dir: Path | None, data_dir: Path | None = None) -> str:
        """`{data_dir}` expands to the sandbox's data directory; relative paths are relative to
        the policy file, so a policy can point at data that ships beside it."""
        location = self.source.location
        if "{data_dir}" in location:
            if data_dir is None:
                raise PolicyError(self.name, "source.location", "uses {data_dir} but no data directory is set")
            location = location.replace("{data_dir}", str(data_dir))
        if self.source.kind == "postgres":
            return os.path.expandvars(location)
        path = Path(location).expanduser()
        if not path.is_absolute() and policy_dir is not None:
            path = (policy_dir / path).resolve()
        return str(path)


def _field_of(error: dict[str, Any]) -> str:
    parts = [str(p) for p in error.get("loc", ()) if not str(p).startswith("function-after")]
    return ".".join(parts) or "(top level)"


def load_policy(path: str | Path) -> Policy:
    """Load and validate one policy file; every problem names the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(str(path), "(file)", "no such file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise PolicyError(str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise PolicyError(str(path), "(top level)", "expected a mapping of policy fields")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = first["msg"].removeprefix("Value error, ")
        field = _field_of(first)
        if not first.get("loc") and re.match(r"^[a-z_.]+: ", problem):
            field, problem = problem.split(": ", 1)
        if first["type"] == "extra_forbidden":
            problem = "unknown field; check the spelling against docs/policies.md"
        elif first["type"] == "missing":
            problem = "required field is missing"
        raise PolicyError(str(path), field, problem) from None


def load_policies(directory: str | Path) -> dict[str, tuple[Policy, Path]]:
    """Every `*.yaml` policy in a directory, keyed by dataset name, with the file it came from."""
    found: dict[str, tuple[Policy, Path]] = {}
    for file in sorted(Path(directory).glob("*.yaml")):
        policy = load_policy(file)
        if policy.name in found:
            raise PolicyError(
                str(file), "name", f"dataset {policy.name!r} is already defined in {found[policy.name][1]}"
            )
        found[policy.name] = (policy, file)
    return found
