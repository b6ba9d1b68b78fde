"""Static SQL types of the accepted subset, known at compile time for every expression.

Why: DuckDB inserts an implicit cast wherever two types meet (a VARCHAR column compared with an
integer, a DATE with a string that is not a date), and such a cast fails at run time only if
some row reaches it. Whether a job fails would then depend on the data: a noiseless bit about
whoever matches the condition. So the compiler decides every conversion itself: a constant is
converted here, in Python, once (and refused if it does not convert); a column is converted only
by an explicit conversion that cannot fail (TRY_CAST); anything else is refused with the fix.

Seven types reach the generated SQL: BOOLEAN, BIGINT (every integer; narrower policy types are
widened), DOUBLE (FLOAT too), VARCHAR, DATE, TIMESTAMP, and NULL for the untyped NULL literal.
Integers also carry the range of values they can take (from their declared type and from
interval arithmetic), so an operation that might overflow 64 bits is known and guarded.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = [
    "BIGINT",
    "BOOLEAN",
    "DATE",
    "DOUBLE",
    "INT64",
    "NULL",
    "TIMESTAMP",
    "VARCHAR",
    "Constant",
    "Facts",
    "SqlType",
    "Typed",
    "cast_allowed",
    "convert_constant",
    "policy_type",
    "unify",
]

INT64 = (-(2**63), 2**63 - 1)
_WIDTHS = {"TINYINT": 8, "SMALLINT": 16, "INTEGER": 32, "BIGINT": 64}


@dataclass(frozen=True)
class SqlType:
    """A type of the subset. `name` is how the generated SQL spells it."""

    name: str

    @property
    def numeric(self) -> bool:
        return self.name in ("BIGINT", "DOUBLE")

    @property
    def temporal(self) -> bool:
        return self.name in ("DATE", "TIMESTAMP")

    def __str__(self) -> str:
        return self.name


BOOLEAN, BIGINT, DOUBLE = SqlType("BOOLEAN"), SqlType("BIGINT"), SqlType("DOUBLE")
VARCHAR, DATE, TIMESTAMP, NULL = SqlType("VARCHAR"), SqlType("DATE"), SqlType("TIMESTAMP"), SqlType("NULL")


class _NotConstant:
    def __repr__(self) -> str:
        return "NOT_CONSTANT"


NOT_CONSTANT: Any = _NotConstant()


@dataclass(frozen=True)
class Constant:
    """A value known at compile time (a literal, or one converted from a literal)."""

    value: Any


@dataclass(frozen=True)
class Typed:
    """What the compiler knows about one expression before any data is read.

    `source` is the type the expression has in the generated SQL before any widening (a
    TINYINT..INTEGER column or SIGN's TINYINT is BIGINT here, but is only widened where an
    operation needs it); `range` bounds an integer's values (None: nothing beyond 64 bits);
    `constant` is set for literals."""

    type: SqlType
    range: tuple[int, int] | None = None
    constant: Constant | None = None
    source: str | None = None

    @property
    def int_range(self) -> tuple[int, int]:
        return self.range if self.range is not None else INT64


def policy_type(name: str) -> Typed:
    """The static type of a column declared with policy type `name`."""
    if name in _WIDTHS:
        bits = _WIDTHS[name]
        return Typed(BIGINT, (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1), source=name)
    if name in ("DOUBLE", "FLOAT"):
        return Typed(DOUBLE, source=name)
    return Typed(SqlType(name), source=name)


def unify(a: SqlType, b: SqlType) -> SqlType | None:
    """The common type two branches or operands are converted to, when the conversion cannot
    fail: NULL fits anything, BIGINT widens to DOUBLE, DATE to TIMESTAMP (by TRY_CAST, since a
    DATE can lie outside TIMESTAMP's range). None when the types do not meet."""
    if a == b:
        return a
    if a == NULL:
        return b
    if b == NULL:
        return a
    if {a, b} == {BIGINT, DOUBLE}:
        return DOUBLE
    if {a, b} == {DATE, TIMESTAMP}:
        return TIMESTAMP
    return None


# Explicit CAST/TRY_CAST targets (rendered as TRY_CAST: a value that does not convert is NULL).
CAST_TARGETS = {
    "BIGINT": BIGINT,
    "INT": BIGINT,
    "INTEGER": BIGINT,
    "SMALLINT": BIGINT,
    "TINYINT": BIGINT,
    "UBIGINT": None,
    "DOUBLE": DOUBLE,
    "FLOAT": DOUBLE,
    "REAL": DOUBLE,
    "VARCHAR": VARCHAR,
    "TEXT": VARCHAR,
    "CHAR": VARCHAR,
    "STRING": VARCHAR,
    "DATE": DATE,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMPNTZ": TIMESTAMP,
    "DATETIME": TIMESTAMP,
    "BOOLEAN": BOOLEAN,
}


def cast_allowed(source: SqlType, target: SqlType) -> bool:
    """Conversions that mean something; the others (a DATE to a number, a number to a DATE)
    would be NULL for every row under TRY_CAST and are refused instead."""
    if source in (target, NULL, VARCHAR) or target == VARCHAR:
        return True
    if source.numeric or source == BOOLEAN:
        return target.numeric or target == BOOLEAN
    return source.temporal and target.temporal


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def convert_constant(value: Any, target: SqlType) -> Any:
    """`value` (a Python value from a literal) as a constant of `target`, or ValueError with a
    sentence saying why. Strict formats only (ISO dates, plain numbers): what is accepted here
    is exactly what every engine reads the same way."""
    if value is None or target == NULL:
        return None
    if target == VARCHAR:
        if isinstance(value, str):
            return value
        raise ValueError(f"{_show(value)} is not a string")
    if target == BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"{_show(value)} is not TRUE or FALSE")
    if target in (BIGINT, DOUBLE):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{_show(value)} is not a number")
        if isinstance(value, str):
            text = value.strip()
            if _INTEGER.match(text):
                value = int(text)
            elif _NUMBER.match(text):
                value = float(text)
            elif target == DOUBLE and text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                return float(text.lower().replace("infinity", "inf"))
            else:
                raise ValueError(f"{_show(value)} is not a number")
        if target == BIGINT and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value) and target == BIGINT:
            raise ValueError(f"{_show(value)} is not a whole number")
        return value
    if target == DATE:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, dt.datetime):
            raise ValueError(f"{_show(value)} is a timestamp, not a date")
        if isinstance(value, str) and _DATE.match(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{_show(value)} is not a date of the form 'YYYY-MM-DD'")
    if target == TIMESTAMP:
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        if isinstance(value, str) and _TIMESTAMP.match(value.strip()):
            try:
                return dt.datetime.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{_show(value)} is not a timestamp of the form 'YYYY-MM-DD HH:MM:SS'")
    raise ValueError(f"{_show(value)} cannot be used as {target}")


def constant_type(value: Any) -> SqlType:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return BIGINT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, dt.datetime):
        return TIMESTAMP
    if isinstance(value, dt.date):
        return DATE
    return VARCHAR


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def add_ranges(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


def mul_ranges(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    corners = [x * y for x in a for y in b]
    return min(corners), max(corners)


def fits_int64(r: tuple[int, int]) -> bool:
    return INT64[0] <= r[0] and r[1] <= INT64[1]


@dataclass
class Facts:
    """What type checking found: the type of each node (by id), the type each comparison or
    branch converts its operands to, and the operations render.py must guard."""

    types: dict[int, Typed] = field(default_factory=dict)
    operand: dict[int, SqlType] = field(default_factory=dict)
    guarded: set[int] = field(default_factory=set)
    booleans: set[int] = field(default_factory=set)  # text codes read as conditions (TRY_CAST AS BOOLEAN)

    def of(self, node: exp.Expression) -> Typed:
        return self.types[id(node)]
