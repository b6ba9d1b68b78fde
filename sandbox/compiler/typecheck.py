"""The type of every expression, decided before any data is read (see types.py for why).

One rule per node type of the accepted subset (`RULES` below): it checks its operands' types,
validates constant arguments (date parts, formats, scales, patterns) and says which operations
can fail at run time, so that render.py guards exactly those. A node type without a rule is not
in the subset. Refusals name the construct and say what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from sqlglot import exp

from sandbox.compiler.types import (
    BIGINT,
    BOOLEAN,
    CAST_TARGETS,
    DATE,
    DOUBLE,
    INT64,
    NULL,
    TIMESTAMP,
    VARCHAR,
    Constant,
    Facts,
    SqlType,
    Typed,
    add_ranges,
    cast_allowed,
    convert_constant,
    fits_int64,
    mul_ranges,
    unify,
)

if TYPE_CHECKING:
    from sandbox.compiler.context import Context

__all__ = ["DATE_PARTS", "TRUNC_UNITS", "TypeChecker"]

NAME = "types"

# date_part / EXTRACT names accepted, by their DuckDB spelling (all integer-valued).
DATE_PARTS = {
    "year": "year",
    "years": "year",
    "quarter": "quarter",
    "month": "month",
    "months": "month",
    "week": "week",
    "weeks": "week",
    "day": "day",
    "days": "day",
    "dayofmonth": "day",
    "dayofweek": "dayofweek",
    "dow": "dayofweek",
    "weekday": "dayofweek",
    "isodow": "isodow",
    "dayofyear": "dayofyear",
    "doy": "dayofyear",
    "isoyear": "isoyear",
    "hour": "hour",
    "hours": "hour",
    "minute": "minute",
    "minutes": "minute",
    "second": "second",
    "seconds": "second",
}
TRUNC_UNITS = {"year", "quarter", "month", "week", "day", "hour", "minute", "second"}
# strftime specifiers with one meaning everywhere we run (no locale, no time zone).
STRFTIME = set("YmdHMSjyUWwuVGIpbBaA%")  # each one DuckDB formats (it refuses %e)
_SPECIFIER = re.compile(r"%(.?)")
MAX_SCALE = 30
TEXT_BOOLEANS = {"1", "0", "true", "false", "t", "f", "y", "n", "yes", "no"}  # DuckDB casts these to BOOLEAN
SUBSTRING_LIMIT = 2**31 - 1


class TypeChecker:
    """Types expressions of one scope. `column` gives a column reference's type (the binder
    resolves it by lineage); `keys` gives a column's public key set, if any."""

    def __init__(
        self,
        ctx: Context,
        facts: Facts,
        column: Callable[[exp.Column], Typed],
        keys: Callable[[exp.Expression], tuple[Any, ...] | None],
        aggregate: Callable[[exp.Expression, TypeChecker], Typed | None] | None = None,
    ) -> None:
        self.ctx, self.facts, self._column, self._keys, self._aggregate = ctx, facts, column, keys, aggregate

    # -- entry points ------------------------------------------------------------------------
    def check(self, node: exp.Expression) -> Typed:
        known = self.facts.types.get(id(node))
        if known is not None:
            return known
        rule = RULES.get(type(node))
        if rule is None:
            typed = self._aggregate(node, self) if self._aggregate is not None else None
            if typed is None:
                self.reject(
                    node,
                    f"The construct {_label(node)}",
                    "it is not in the sandbox's allowlist of pure, bounded SQL",
                    "Use arithmetic, comparisons, CASE, FLOOR/ROUND, string functions and date parts; see the "
                    "README's 'Accepted SQL'.",
                )
        else:
            typed = rule(self, node)
        self.facts.types[id(node)] = typed
        return typed

    def condition(self, node: exp.Expression, clause: str) -> Typed:
        """A condition (WHERE, ON, HAVING, WHEN, AND/OR/NOT operands) must be BOOLEAN: DuckDB
        would otherwise cast the value to BOOLEAN, which fails on text."""
        typed = self.check(node)
        if typed.type == VARCHAR and self._text_booleans([(node, typed)]):
            self.facts.booleans.add(id(node))  # a code such as PUMS's married '0'/'1', read as DuckDB reads it
            return Typed(BOOLEAN)
        if typed.type not in (BOOLEAN, NULL):
            self.reject(
                node,
                f"{clause} {_label(node)}",
                f"a condition must be true or false, and this is {typed.type}",
                f"Compare it, e.g. {_label(node, 30)} = <value> or {_label(node, 30)} IS NOT NULL.",
            )
        return typed

    def reject(self, node: exp.Expression | None, construct: str, reason: str, fix: str) -> NoReturn:
        self.ctx.reject(node, construct, reason, fix, NAME)

    # -- shared helpers ----------------------------------------------------------------------
    def meet(self, parent: exp.Expression, operands: list[exp.Expression], what: str) -> SqlType:
        """The type `operands` are compared (or chosen between) as; records it for render.py.

        Values that vary decide the type; constants are converted to it here, once, and refused
        if they do not convert. Text compared with a number is read as a number (by TRY_CAST)
        only when the text's public keys are all numbers, as PUMS codes are; otherwise the
        refusal says how to write the constant."""
        typed = [self.check(o) for o in operands]
        varying = [(n, t) for n, t in zip(operands, typed, strict=True) if t.constant is None and t.type != NULL]
        constants = [(n, t) for n, t in zip(operands, typed, strict=True) if t.constant is not None]
        target: SqlType | None = None
        for node, t in varying:
            joined = t.type if target is None else unify(target, t.type)
            if joined is None and {target, t.type} in ({VARCHAR, BIGINT}, {VARCHAR, DOUBLE}):
                joined = self._as_number(varying, [t.type, target])
            if joined is None:
                other = next(n for n, u in varying if u.type == target)
                self._mismatch(parent, other, target, node, t.type, what)
            target = joined
        if target == VARCHAR and any(t.type.numeric for _, t in constants):
            target = self._as_number(varying, [t.type for _, t in constants]) or VARCHAR
        if target == VARCHAR and any(t.type == BOOLEAN for _, t in constants) and self._text_booleans(varying):
            target = BOOLEAN  # sex = TRUE on a 0/1 code
        if target is None:  # only constants (and NULLs)
            for _, t in constants:
                joined = t.type if target is None else unify(target, t.type)
                if joined is None:
                    self.reject(
                        parent,
                        f"{what} {_label(parent)}",
                        f"it mixes constants of types {target} and {t.type}",
                        "Write the constants with the same type.",
                    )
                target = joined
            target = target or NULL
        column = varying[0][0] if varying else None
        if target == BIGINT and any(_fractional(t.constant.value) for _, t in constants):
            # integers meet 1.5 or 1e308: compared (or chosen between) as DOUBLE, as DuckDB does; a
            # BIGINT rendering would truncate the constant (x < 1.5 read as x < 1) or overflow it
            target = DOUBLE
        for node, t in constants:
            try:
                convert_constant(t.constant.value, target)
            except ValueError as err:
                subject = f"{_label(column, 30)} is {target}" if column is not None else f"the type is {target}"
                self.reject(
                    node,
                    f"The constant {_label(node)} in {_label(parent)}",
                    f"{err}, and {subject}",
                    _constant_fix(target, column),
                )
        self.facts.operand[id(parent)] = target
        return target

    def _as_number(self, varying: list[tuple[exp.Expression, Typed]], others: list[SqlType]) -> SqlType | None:
        """Text meets a number: the text is read as a number when every text operand's public
        keys are numbers (BIGINT if they and the other operands are all integers)."""
        keys: list[Any] = []
        for node, t in varying:
            if t.type == VARCHAR:
                found = self._keys(node)
                if not found or not all(_is_number(k) for k in found):
                    return None
                keys.extend(found)
        integer = all(_is_integer(k) for k in keys) and DOUBLE not in others
        return BIGINT if integer else DOUBLE

    def _text_booleans(self, varying: list[tuple[exp.Expression, Typed]]) -> bool:
        """Every text operand's public keys are spellings DuckDB reads as TRUE or FALSE ('0'/'1',
        'true'/'false', 't'/'f', 'y'/'n', 'yes'/'no'), so TRY_CAST(x AS BOOLEAN) is DuckDB's own
        reading of each key, and NULL for anything else."""
        for node, t in varying:
            if t.type != VARCHAR:
                continue
            found = self._keys(node)
            if not found or not all(isinstance(k, str) and k.lower() in TEXT_BOOLEANS for k in found):
                return False
        return True

    def _mismatch(self, parent, a, ta, b, tb, what) -> NoReturn:
        self.reject(
            parent,
            f"{what} {_label(parent)}",
            f"{_label(a, 30)} is {ta} and {_label(b, 30)} is {tb}; the engine would convert one of them "
            "row by row, and that conversion can fail on some rows",
            f"Convert one side explicitly, e.g. CAST({_label(b, 30)} AS {ta}), or compare values of the same type.",
        )

    def numeric(self, node: exp.Expression, what: str) -> Typed:
        typed = self.check(node)
        if not (typed.type.numeric or typed.type == NULL):
            self.reject(
                node,
                f"{what} of {_label(node)}",
                f"it needs a number, and {_label(node, 30)} is {typed.type}",
                _conversion_fix(node, typed.type, "a number"),
            )
        return typed

    def text(self, node: exp.Expression, what: str) -> Typed:
        typed = self.check(node)
        if typed.type not in (VARCHAR, NULL):
            self.reject(
                node,
                f"{what} of {_label(node)}",
                f"it needs text, and {_label(node, 30)} is {typed.type}",
                f"Convert it first: CAST({_label(node, 30)} AS VARCHAR).",
            )
        return typed

    def temporal(self, node: exp.Expression, what: str) -> Typed:
        typed = self.check(node)
        if not (typed.type.temporal or typed.type == NULL):
            self.reject(
                node,
                f"{what} of {_label(node)}",
                f"it needs a DATE or TIMESTAMP, and {_label(node, 30)} is {typed.type}",
                f"Apply it to a date column, or convert text first: TRY_CAST({_label(node, 30)} AS DATE).",
            )
        return typed

    def constant(self, node: exp.Expression | None, what: str, fix: str) -> Any:
        if node is None:
            return None
        typed = self.check(node)
        if typed.constant is None:
            self.reject(node, f"{what} {_label(node)}", "it must be a constant written in the query", fix)
        return typed.constant.value

    def guard(self, node: exp.Expression) -> None:
        self.facts.guarded.add(id(node))


# -- rules, one per node type ---------------------------------------------------------------
def _paren(tc: TypeChecker, node: exp.Paren) -> Typed:
    return tc.check(node.this)


def _fractional(value: Any) -> bool:
    """A constant that is a number but not a 64-bit integer (1.5, '2.5', 1e308)."""
    try:
        return isinstance(convert_constant(value, BIGINT), float)
    except ValueError:
        return False


def _column(tc: TypeChecker, node: exp.Column) -> Typed:
    return tc._column(node)


def _literal(tc: TypeChecker, node: exp.Literal) -> Typed:
    if node.is_string:
        return Typed(VARCHAR, constant=Constant(node.this))
    value = convert_constant(node.this, BIGINT if re.fullmatch(r"\d+", node.this) else DOUBLE)
    if isinstance(value, int):
        return Typed(BIGINT, (value, value), Constant(value))
    return Typed(DOUBLE, constant=Constant(value))


def _boolean(tc: TypeChecker, node: exp.Boolean) -> Typed:
    return Typed(BOOLEAN, constant=Constant(bool(node.this)))


def _null(tc: TypeChecker, node: exp.Null) -> Typed:
    return Typed(NULL, constant=Constant(None))


def _cast(tc: TypeChecker, node: exp.Cast) -> Typed:
    to = node.to
    name = to.this.value if isinstance(to.this, exp.DataType.Type) else str(to.this)
    target = CAST_TARGETS.get(name.upper()) if not to.expressions or name.upper() in ("VARCHAR", "TEXT") else None
    if target is None:
        tc.reject(
            node,
            f"The conversion to {to.sql('duckdb')}",
            "the sandbox converts only to BIGINT, INTEGER, DOUBLE, VARCHAR, DATE, TIMESTAMP and BOOLEAN",
            f"Write e.g. CAST({_label(node.this, 30)} AS DOUBLE).",
        )
    source = tc.check(node.this)
    if source.constant is not None:
        try:
            value = convert_constant(source.constant.value, target)
        except ValueError as err:
            tc.reject(node, f"The constant {_label(node)}", str(err), _constant_fix(target, None))
        return Typed(target, (value, value) if target == BIGINT and value is not None else None, Constant(value))
    if not cast_allowed(source.type, target):
        tc.reject(
            node,
            f"The conversion {_label(node)}",
            f"a {source.type} never converts to {target}, so every row would be NULL",
            _conversion_fix(node.this, source.type, str(target)),
        )
    width = name.upper()
    if target == BIGINT and width in ("INTEGER", "INT", "SMALLINT", "TINYINT"):
        bits = {"INTEGER": 32, "INT": 32, "SMALLINT": 16, "TINYINT": 8}[width]
        return Typed(BIGINT, (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1), source=width if width != "INT" else "INTEGER")
    if target == BIGINT:
        return Typed(BIGINT, source.range if source.type == BIGINT else None, source="BIGINT")
    return Typed(target, source=target.name if target != DOUBLE or width != "FLOAT" else "FLOAT")


def _comparison(tc: TypeChecker, node: exp.Expression) -> Typed:
    tc.meet(node, [node.this, node.expression], "The comparison")
    return Typed(BOOLEAN)


def _in(tc: TypeChecker, node: exp.In) -> Typed:
    if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
        tc.reject(node, "IN with a subquery", "subqueries are not supported", "List constants: x IN ('a', 'b').")
    if isinstance(node.this, exp.Tuple):
        tc.reject(node, "A tuple IN", "row comparisons are not supported", "Combine single comparisons with AND/OR.")
    tc.meet(node, [node.this, *node.expressions], "The IN list")
    return Typed(BOOLEAN)


def _between(tc: TypeChecker, node: exp.Between) -> Typed:
    tc.meet(node, [node.this, node.args["low"], node.args["high"]], "The BETWEEN")
    return Typed(BOOLEAN)


def _like(tc: TypeChecker, node: exp.Expression) -> Typed:
    tc.text(node.this, "LIKE")
    tc.constant(node.expression, "The LIKE pattern", "Write the pattern as a string constant, e.g. name LIKE 'A%'.")
    if tc.check(node.expression).type != VARCHAR:
        tc.reject(node.expression, "The LIKE pattern", "it must be text", "Write e.g. LIKE 'A%'.")
    return Typed(BOOLEAN)


def _starts_with(tc: TypeChecker, node: exp.StartsWith) -> Typed:
    tc.text(node.this, "STARTS_WITH")
    tc.text(node.expression, "STARTS_WITH")
    return Typed(BOOLEAN)


def _is(tc: TypeChecker, node: exp.Is) -> Typed:
    tc.check(node.this)
    right = node.expression
    if isinstance(right, exp.Boolean):
        tc.condition(node.this, "IS TRUE/FALSE on")
    elif not isinstance(right, exp.Null):
        tc.reject(node, f"IS {_label(right)}", "only IS [NOT] NULL, TRUE or FALSE are supported", "Use = instead.")
    return Typed(BOOLEAN)


def _connector(tc: TypeChecker, node: exp.Expression) -> Typed:
    """A chain of AND (or of OR) is typed without recursing along the chain: long chains are
    accepted (bounded_depth counts a chain as one level)."""
    chain = [node]
    for inner in chain:
        for operand in (inner.this, inner.expression):
            if type(operand) is type(node):
                chain.append(operand)
            else:
                tc.condition(operand, "The operand")
    for inner in chain[1:]:
        tc.facts.types[id(inner)] = Typed(BOOLEAN)
    return Typed(BOOLEAN)


def _not(tc: TypeChecker, node: exp.Not) -> Typed:
    tc.condition(node.this, "NOT")
    return Typed(BOOLEAN)


def _arithmetic(tc: TypeChecker, node: exp.Expression) -> Typed:
    symbol = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}[type(node)]
    a, b = (tc.check(n) for n in (node.this, node.expression))
    if a.type.temporal or b.type.temporal:
        tc.reject(
            node,
            f"Date arithmetic {_label(node)}",
            "dates can run out of the engine's range, and interval arithmetic is not in the subset",
            "Group or filter on date parts instead, e.g. YEAR(d) or date_trunc('month', d).",
        )
    a, b = (tc.numeric(n, f"'{symbol}'") for n in (node.this, node.expression))
    if DOUBLE in (a.type, b.type):
        return Typed(DOUBLE)
    if NULL in (a.type, b.type):
        return Typed(BIGINT, constant=Constant(None)) if a.constant and b.constant else Typed(BIGINT)
    ra, rb = a.int_range, b.int_range
    if isinstance(node, exp.Add):
        r = add_ranges(ra, rb)
    elif isinstance(node, exp.Sub):
        r = add_ranges(ra, (-rb[1], -rb[0]))
    else:
        r = mul_ranges(ra, rb)
    return _integer_result(tc, node, r)


def _integer_result(tc: TypeChecker, node: exp.Expression, r: tuple[int, int]) -> Typed:
    """An integer operation whose result could leave 64 bits is guarded (NULL instead of an
    overflow error); its range is then clipped to 64 bits."""
    if not fits_int64(r):
        tc.guard(node)
        r = (max(r[0], INT64[0]), min(r[1], INT64[1]))
    return Typed(BIGINT, r, source="BIGINT")  # computed on BIGINT operands (render.integer)


def _div(tc: TypeChecker, node: exp.Div) -> Typed:
    for n in (node.this, node.expression):
        tc.numeric(n, "'/'")
    return Typed(DOUBLE)  # always as DOUBLE: total (x / 0 is inf or NaN, never an error)


def _intdiv(tc: TypeChecker, node: exp.IntDiv) -> Typed:
    a, b = (tc.numeric(n, "'//'") for n in (node.this, node.expression))
    if DOUBLE in (a.type, b.type):
        tc.reject(
            node,
            f"Integer division {_label(node)} of a DOUBLE",
            "'//' is defined for integers only (engines disagree on doubles)",
            f"Write FLOOR({_label(node.this, 25)} / {_label(node.expression, 25)}).",
        )
    ra = a.int_range
    if not (b.constant is not None and b.constant.value not in (0, -1, None)):
        tc.guard(node)  # division by zero, or INT64_MIN // -1
    top = max(abs(ra[0]), abs(ra[1]))
    return Typed(BIGINT, (max(-top, INT64[0]), min(top, INT64[1])), source="BIGINT")


def _mod(tc: TypeChecker, node: exp.Mod) -> Typed:
    a, b = (tc.numeric(n, "'%'") for n in (node.this, node.expression))
    if DOUBLE in (a.type, b.type):
        return Typed(DOUBLE)
    if not (b.constant is not None and b.constant.value not in (0, -1, None)):
        tc.guard(node)
    rb = b.int_range
    top = max(abs(rb[0]), abs(rb[1]))
    top = min(top, INT64[1])
    return Typed(BIGINT, (-top, top), source="BIGINT")


def _neg(tc: TypeChecker, node: exp.Neg) -> Typed:
    a = tc.numeric(node.this, "'-'")
    if a.constant is not None:
        if a.constant.value is None:
            return Typed(a.type, None, Constant(None))
        value = -a.constant.value
        return Typed(a.type, (value, value) if a.type == BIGINT else None, Constant(value))
    if a.type != BIGINT:
        return Typed(a.type)
    return _integer_result(tc, node, (-a.int_range[1], -a.int_range[0]))


def _abs(tc: TypeChecker, node: exp.Abs) -> Typed:
    a = tc.numeric(node.this, "ABS")
    if a.type != BIGINT:
        return Typed(a.type)
    lo, hi = a.int_range
    top = max(abs(lo), abs(hi))
    return _integer_result(tc, node, (0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), top))


def _sign(tc: TypeChecker, node: exp.Sign) -> Typed:
    tc.numeric(node.this, "SIGN")
    return Typed(BIGINT, (-1, 1), source="TINYINT")


def _floor_ceil(tc: TypeChecker, node: exp.Expression) -> Typed:
    if node.args.get("decimals") or node.args.get("to"):
        tc.reject(node, f"{_label(node)}", "FLOOR and CEIL take one argument", "Use ROUND(x, n) for decimals.")
    a = tc.numeric(node.this, type(node).__name__.upper())
    return Typed(a.type if a.type != NULL else DOUBLE, a.range if a.type == BIGINT else None)


def _round(tc: TypeChecker, node: exp.Round) -> Typed:
    a = tc.numeric(node.this, "ROUND")
    decimals = node.args.get("decimals")
    scale = 0
    if decimals is not None:
        scale = tc.constant(decimals, "The ROUND scale", "Write e.g. ROUND(x, 2).")
        if not isinstance(scale, int) or isinstance(scale, bool) or not -MAX_SCALE <= scale <= MAX_SCALE:
            tc.reject(
                decimals,
                f"The ROUND scale {_label(decimals)}",
                f"it must be a whole number from {-MAX_SCALE} to {MAX_SCALE}",
                "Write e.g. ROUND(x, 2) or ROUND(x, -3).",
            )
    for key in ("truncate", "casts_non_integer_decimals"):
        if node.args.get(key):
            tc.reject(node, _label(node), "this form of ROUND is not supported", "Write ROUND(x, n).")
    if a.type != BIGINT:
        return Typed(DOUBLE)
    if scale < 0:
        tc.guard(node)  # rounding 9223372036854775807 to tens overflows
    return Typed(BIGINT, None if scale < 0 else a.range)


def _double_function(tc: TypeChecker, node: exp.Expression) -> Typed:
    """SQRT, LN, LOG, EXP, POWER: computed on DOUBLE, where the engine returns NaN or infinity
    instead of failing (sqrt(-1), ln(0), exp(1000))."""
    name = type(node).__name__.upper()
    for key, value in node.args.items():
        if isinstance(value, exp.Expression):
            tc.numeric(value, name)
        elif value not in (None, False) and key not in ("this", "expression"):
            tc.reject(node, _label(node), f"this form of {name} is not supported", f"Write {name}(x).")
    return Typed(DOUBLE)


def _chosen(tc: TypeChecker, node: exp.Expression, values: list[exp.Expression], what: str) -> Typed:
    target = tc.meet(node, values, what)
    ranges = [tc.check(v).range for v in values if tc.check(v).type == BIGINT]
    if target == BIGINT and ranges and all(r is not None for r in ranges):
        return Typed(BIGINT, (min(r[0] for r in ranges), max(r[1] for r in ranges)))
    return Typed(target)


def _least_greatest(tc: TypeChecker, node: exp.Expression) -> Typed:
    return _chosen(tc, node, [node.this, *node.expressions], type(node).__name__.upper())


def _coalesce(tc: TypeChecker, node: exp.Coalesce) -> Typed:
    return _chosen(tc, node, [node.this, *node.expressions], "COALESCE")


def _nullif(tc: TypeChecker, node: exp.Nullif) -> Typed:
    target = tc.meet(node, [node.this, node.expression], "NULLIF")
    first = tc.check(node.this)
    return Typed(target, first.range if target == BIGINT else None)


def _case(tc: TypeChecker, node: exp.Case) -> Typed:
    operand = node.this
    results = []
    for branch in node.args.get("ifs") or []:
        if operand is not None:
            tc.meet(branch, [operand, branch.this], "The CASE value")
        else:
            tc.condition(branch.this, "WHEN")
        results.append(branch.args["true"])
    if node.args.get("default") is not None:
        results.append(node.args["default"])
    else:
        results.append(exp.Null())  # typed as NULL: no ELSE means ELSE NULL
    return _chosen(tc, node, results, "The CASE results")


def _if(tc: TypeChecker, node: exp.If) -> Typed:
    tc.condition(node.this, "IF")
    values = [node.args["true"], node.args.get("false") or exp.Null()]
    return _chosen(tc, node, values, "The IF results")


def _string_function(tc: TypeChecker, node: exp.Expression) -> Typed:
    name = type(node).__name__.upper()
    tc.text(node.this, name)
    if isinstance(node, exp.Trim):
        if node.expression is not None:
            tc.text(node.expression, "TRIM")
        if node.args.get("collation"):
            tc.reject(node, _label(node), "COLLATE is not supported", "Write TRIM(x).")
    elif any(v for k, v in node.args.items() if k != "this"):
        tc.reject(node, _label(node), f"this form of {name} is not supported", f"Write {name}(x).")
    if isinstance(node, exp.Length):
        return Typed(BIGINT, (0, 2**32), source="BIGINT")
    return Typed(VARCHAR)


def _substring(tc: TypeChecker, node: exp.Substring) -> Typed:
    tc.text(node.this, "SUBSTRING")
    for key in ("start", "length"):
        arg = node.args.get(key)
        if arg is None:
            continue
        value = tc.constant(arg, f"The SUBSTRING {key}", "Write constants, e.g. SUBSTRING(s, 1, 3).")
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > SUBSTRING_LIMIT:
            tc.reject(arg, f"The SUBSTRING {key} {_label(arg)}", "it must be a whole number", "Write e.g. 1 or 3.")
        if key == "length" and value < 0:
            tc.reject(arg, f"The SUBSTRING length {value}", "it cannot be negative", "Write a length >= 0.")
    return Typed(VARCHAR)


def _date_part_function(tc: TypeChecker, node: exp.Expression) -> Typed:
    tc.temporal(node.this, type(node).__name__.upper())
    return Typed(BIGINT, (-(2**40), 2**40), source="BIGINT")


def _extract(tc: TypeChecker, node: exp.Extract) -> Typed:
    part = node.this.name if isinstance(node.this, exp.Var | exp.Identifier | exp.Literal) else None
    _date_part(tc, node.this, part)
    tc.temporal(node.expression, "EXTRACT")
    return Typed(BIGINT, (-(2**40), 2**40), source="BIGINT")


def _anonymous(tc: TypeChecker, node: exp.Anonymous) -> Typed:
    name = node.name.lower()
    if name not in ("date_part", "datepart") or len(node.expressions) != 2:
        tc.reject(
            node,
            f"The function {node.name.upper()}()",
            "it is not in the sandbox's list of pure scalar functions",
            "Use arithmetic, CASE, FLOOR/ROUND, string and date-part functions; see the README's 'Accepted SQL'.",
        )
    part_node, value = node.expressions
    part = tc.constant(part_node, "The date part", "Write e.g. date_part('year', d).")
    _date_part(tc, part_node, part)
    tc.temporal(value, "date_part")
    return Typed(BIGINT, (-(2**40), 2**40), source="BIGINT")


def _date_part(tc: TypeChecker, node: exp.Expression, part: Any) -> None:
    if not isinstance(part, str) or part.lower() not in DATE_PARTS:
        tc.reject(
            node,
            f"The date part {part!r}",
            "it is not a date part the sandbox knows",
            f"Use one of: {', '.join(sorted(set(DATE_PARTS.values())))}.",
        )


def _trunc(tc: TypeChecker, node: exp.Expression) -> Typed:
    unit = node.args.get("unit")
    name = unit.name if isinstance(unit, exp.Var | exp.Literal | exp.Identifier) else None
    if not isinstance(name, str) or name.lower() not in TRUNC_UNITS:
        tc.reject(
            unit or node,
            f"The date_trunc unit {name!r}",
            "it is not a unit the sandbox knows",
            f"Use one of: {', '.join(sorted(TRUNC_UNITS))}.",
        )
    if any(node.args.get(k) for k in ("zone", "input_type_preserved")):
        tc.reject(node, _label(node), "this form of date_trunc is not supported", "Write date_trunc('month', d).")
    tc.temporal(node.this, "date_trunc")
    tc.guard(node)  # dates at the ends of DATE's range have no truncation inside TIMESTAMP's
    return Typed(TIMESTAMP)


def _strftime(tc: TypeChecker, node: exp.TimeToStr) -> Typed:
    tc.temporal(node.this, "strftime")
    fmt = tc.constant(node.args.get("format"), "The strftime format", "Write e.g. strftime(d, '%Y-%m').")
    if not isinstance(fmt, str) or not 0 < len(fmt) <= 100:  # DuckDB refuses '' when it runs
        tc.reject(
            node, "The strftime format", "it must be a short string with at least one character", "Write e.g. '%Y-%m'."
        )
    for spec in _SPECIFIER.findall(fmt):
        if spec not in STRFTIME:
            tc.reject(
                node.args["format"],
                f"The strftime specifier %{spec}",
                "it is not one the sandbox knows",
                f"Use {' '.join('%' + s for s in sorted(STRFTIME))}.",
            )
    if any(node.args.get(k) for k in ("culture", "zone")):
        tc.reject(node, _label(node), "this form of strftime is not supported", "Write strftime(d, '%Y').")
    return Typed(VARCHAR)


RULES: dict[type[exp.Expression], Callable[[TypeChecker, Any], Typed]] = {
    exp.Paren: _paren,
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Boolean: _boolean,
    exp.Null: _null,
    exp.Cast: _cast,
    exp.TryCast: _cast,
    exp.EQ: _comparison,
    exp.NEQ: _comparison,
    exp.GT: _comparison,
    exp.GTE: _comparison,
    exp.LT: _comparison,
    exp.LTE: _comparison,
    exp.In: _in,
    exp.Between: _between,
    exp.Like: _like,
    exp.ILike: _like,
    exp.StartsWith: _starts_with,
    exp.Is: _is,
    exp.And: _connector,
    exp.Or: _connector,
    exp.Not: _not,
    exp.Add: _arithmetic,
    exp.Sub: _arithmetic,
    exp.Mul: _arithmetic,
    exp.Div: _div,
    exp.IntDiv: _intdiv,
    exp.Mod: _mod,
    exp.Neg: _neg,
    exp.Abs: _abs,
    exp.Sign: _sign,
    exp.Floor: _floor_ceil,
    exp.Ceil: _floor_ceil,
    exp.Round: _round,
    exp.Sqrt: _double_function,
    exp.Ln: _double_function,
    exp.Log: _double_function,
    exp.Exp: _double_function,
    exp.Pow: _double_function,
    exp.Least: _least_greatest,
    exp.Greatest: _least_greatest,
    exp.Coalesce: _coalesce,
    exp.Nullif: _nullif,
    exp.Case: _case,
    exp.If: _if,
    exp.Lower: _string_function,
    exp.Upper: _string_function,
    exp.Length: _string_function,
    exp.Trim: _string_function,
    exp.Substring: _substring,
    exp.Year: _date_part_function,
    exp.Month: _date_part_function,
    exp.Day: _date_part_function,
    exp.Quarter: _date_part_function,
    exp.DayOfWeek: _date_part_function,
    exp.DayOfWeekIso: _date_part_function,
    exp.DayOfMonth: _date_part_function,
    exp.DayOfYear: _date_part_function,
    exp.Week: _date_part_function,
    exp.WeekOfYear: _date_part_function,
    exp.Extract: _extract,
    exp.Anonymous: _anonymous,
    exp.DateTrunc: _trunc,
    exp.TimestampTrunc: _trunc,
    exp.TimeToStr: _strftime,
}


def _label(node: exp.Expression | None, limit: int = 60) -> str:
    if node is None:
        return ""
    text = node.sql("duckdb")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    try:
        convert_constant(value, DOUBLE)
        return True
    except ValueError:
        return False


def _is_integer(value: Any) -> bool:
    try:
        return isinstance(convert_constant(value, BIGINT), int)
    except ValueError:
        return False


def _constant_fix(target: SqlType, column: exp.Expression | None) -> str:
    subject = _label(column, 30) if column is not None else "x"
    if target == VARCHAR:
        return f"{subject} is text: write the constant in quotes, e.g. {subject} = '1'."
    if target == DATE:
        return f"Write a date as 'YYYY-MM-DD', e.g. {subject} >= '2024-01-31'."
    if target == TIMESTAMP:
        return f"Write a timestamp as 'YYYY-MM-DD HH:MM:SS', e.g. {subject} >= '2024-01-31 08:00:00'."
    if target == BOOLEAN:
        return f"Compare with TRUE or FALSE, e.g. {subject} = TRUE."
    return f"Write a number without quotes, e.g. {subject} > 10."


def _conversion_fix(node: exp.Expression, source: SqlType, wanted: str) -> str:
    subject = _label(node, 30)
    if source == VARCHAR:
        return f"Convert the text explicitly: TRY_CAST({subject} AS DOUBLE) (NULL where it is not a number)."
    if source.temporal:
        return f"Use a date part, e.g. YEAR({subject}) or date_part('month', {subject})."
    return f"Use a column of type {wanted}."
