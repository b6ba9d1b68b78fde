"""Render a typed, validated expression as SQL that cannot fail on any value of its input types.

The invariant (DESIGN.md, "Soundness"): whether a job fails must not depend on the data. The
typed tree (typecheck.py) says what every node is; this module turns it into SQL where
- every conversion is explicit and cannot fail: constants arrive already converted (they were
  checked in Python at compile time); a value that varies is widened (integer -> BIGINT/DOUBLE,
  always exact or rounding, never failing) or converted by TRY_CAST (text -> number, DATE ->
  TIMESTAMP, and every CAST the user writes), which gives NULL instead of an error;
- integer arithmetic is on BIGINT operands, and the operations typecheck.py found able to
  overflow or divide by zero (from the operands' value ranges) are wrapped in TRY, which gives
  NULL for that row instead of an error;
- division is on DOUBLE, where x / 0 is infinity or NaN, never an error;
- constant arguments (date parts, formats, scales, patterns) were validated at compile time;
- every operand of an operator is parenthesised, so precedence never depends on the input text.
The only implicit conversions left are widenings between integer widths and FLOAT to DOUBLE,
which cannot fail. The fuzzer in tests/fuzz proves the invariant on adversarial data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from sandbox.compiler.typecheck import DATE_PARTS
from sandbox.compiler.types import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    NULL,
    TIMESTAMP,
    VARCHAR,
    Facts,
    SqlType,
    convert_constant,
)

__all__ = ["Renderer", "literal"]

_ATOMIC = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Cast, exp.TryCast, exp.Try, exp.Paren, exp.Case)


def literal(value: Any, type_: SqlType) -> exp.Expression:
    """A constant as SQL of exactly `type_` (no literal typing left to the engine's judgement)."""
    if value is None:
        return exp.Null() if type_ == NULL else exp.cast(exp.Null(), type_.name)
    if type_ == BOOLEAN:
        return exp.Boolean(this=bool(value))
    if type_ == BIGINT:
        return exp.Literal.number(int(value))
    if type_ == DOUBLE:
        number = float(value)
        if not math.isfinite(number):  # NaN and infinities have no numeric literal
            return exp.cast(exp.Literal.string(repr(number)), "DOUBLE")
        return exp.cast(exp.Literal.number(repr(number)), "DOUBLE")
    if type_ == DATE:
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if type_ == TIMESTAMP:
        assert isinstance(value, dt.datetime)
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    return exp.Literal.string(str(value))


def _p(node: exp.Expression) -> exp.Expression:
    return (
        node
        if isinstance(node, _ATOMIC) or (isinstance(node, exp.Func) and not _is_operator(node))
        else exp.Paren(this=node)
    )


def _is_operator(node: exp.Expression) -> bool:
    return isinstance(node, exp.Binary | exp.Unary | exp.Predicate | exp.Connector | exp.Not | exp.Neg)


class Renderer:
    """Total SQL for bound expressions. `column` renders a column reference (by default as the
    binder left it: bare for one relation, qualified by relation alias when several are fused)."""

    def __init__(self, facts: Facts, column: Callable[[exp.Column], exp.Expression] | None = None) -> None:
        self.facts = facts
        self._column_sql = column or (lambda node: exp.column(node.name, node.table or None, quoted=True))

    def sql(self, node: exp.Expression) -> str:
        return self.render(node).sql(dialect="duckdb")

    def render(self, node: exp.Expression) -> exp.Expression:
        typed = self.facts.of(node)
        if typed.constant is not None and not isinstance(node, exp.Column):
            return literal(typed.constant.value, typed.type)
        method = getattr(self, f"_{type(node).__name__.lower()}", None)
        out = method(node) if method is not None else self._function(node)
        if id(node) in self.facts.booleans:  # a text code as a condition (typecheck.condition)
            return exp.TryCast(this=out, to=exp.DataType.build("BOOLEAN"))
        return exp.Try(this=out) if id(node) in self.facts.guarded else out

    def render_as(self, node: exp.Expression, target: SqlType) -> exp.Expression:
        """`node` converted to `target` by a conversion that cannot fail."""
        typed = self.facts.of(node)
        if typed.constant is not None and not isinstance(node, exp.Column):
            return literal(convert_constant(typed.constant.value, target), target)
        out = self.render(node)
        if typed.type == target or target == NULL:
            return out
        if typed.type == NULL:
            return exp.cast(out, target.name)
        if typed.type == BIGINT and target == DOUBLE:
            return exp.cast(out, "DOUBLE")
        text_read = typed.type == VARCHAR and (target.numeric or target == BOOLEAN)  # keys that are numbers / 0-1
        if (typed.type == DATE and target == TIMESTAMP) or text_read:
            return exp.TryCast(this=out, to=exp.DataType.build(target.name))
        raise AssertionError(f"typecheck admitted {typed.type} as {target}")

    def integer(self, node: exp.Expression) -> exp.Expression:
        """An arithmetic operand as BIGINT: anything not known to be 64-bit in the engine is
        widened (a narrow column, and also LEAST, COALESCE, CASE, ABS ... of narrow values, which
        keep the engine's narrow type), so the operation is done in 64 bits and the ranges
        typecheck.py reasons with are the ones the engine computes in."""
        typed = self.facts.of(node)
        if typed.constant is not None and not isinstance(node, exp.Column):
            if typed.constant.value is None:
                return exp.cast(exp.Null(), "BIGINT")
            return exp.cast(exp.Literal.number(int(typed.constant.value)), "BIGINT")
        out = self.render(node)
        if typed.source != "BIGINT":
            return exp.cast(out, "BIGINT")
        return out

    def double(self, node: exp.Expression) -> exp.Expression:
        typed = self.facts.of(node)
        out = self.render_as(node, DOUBLE)
        if typed.source == "FLOAT" and typed.constant is None:
            return exp.cast(out, "DOUBLE")
        return out

    def number(self, node: exp.Expression, result: SqlType) -> exp.Expression:
        return _p(self.double(node) if result == DOUBLE else self.integer(node))

    # -- one method per node type ------------------------------------------------------------
    def _paren(self, node: exp.Paren) -> exp.Expression:
        return self.render(node.this)

    def _column(self, node: exp.Column) -> exp.Expression:
        return self._column_sql(node)

    def _comparison(self, node: exp.Expression) -> exp.Expression:
        target = self.facts.operand[id(node)]
        return type(node)(
            this=_p(self.render_as(node.this, target)), expression=_p(self.render_as(node.expression, target))
        )

    _eq = _neq = _gt = _gte = _lt = _lte = _comparison

    def _in(self, node: exp.In) -> exp.Expression:
        target = self.facts.operand[id(node)]
        return exp.In(
            this=_p(self.render_as(node.this, target)),
            expressions=[self.render_as(e, target) for e in node.expressions],
        )

    def _between(self, node: exp.Between) -> exp.Expression:
        target = self.facts.operand[id(node)]
        return exp.Between(
            this=_p(self.render_as(node.this, target)),
            low=_p(self.render_as(node.args["low"], target)),
            high=_p(self.render_as(node.args["high"], target)),
        )

    def _like(self, node: exp.Expression) -> exp.Expression:
        out = type(node)(
            this=_p(self.render_as(node.this, VARCHAR)), expression=self.render_as(node.expression, VARCHAR)
        )
        return exp.Not(this=exp.Paren(this=out)) if node.args.get("negate") else out

    _ilike = _like

    def _startswith(self, node: exp.StartsWith) -> exp.Expression:
        return exp.StartsWith(
            this=self.render_as(node.this, VARCHAR), expression=self.render_as(node.expression, VARCHAR)
        )

    def _is(self, node: exp.Is) -> exp.Expression:
        return exp.Is(this=_p(self.render(node.this)), expression=node.expression.copy())

    def _and(self, node: exp.Expression) -> exp.Expression:
        """A chain of AND (or OR) stays one flat chain, rendered without recursing along it."""
        operands, stack = [], [node]
        while stack:
            inner = stack.pop()
            for operand in (inner.expression, inner.this):
                (stack if type(operand) is type(node) else operands).append(operand)
        operands.reverse()
        rendered = [_p(self.render_as(o, BOOLEAN)) for o in operands]
        out = rendered[0]
        for operand in rendered[1:]:
            out = type(node)(this=out, expression=operand)
        return out

    _or = _and

    def _not(self, node: exp.Not) -> exp.Expression:
        return exp.Not(this=_p(self.render_as(node.this, BOOLEAN)))

    def _arithmetic(self, node: exp.Expression) -> exp.Expression:
        result = self.facts.of(node).type
        return type(node)(this=self.number(node.this, result), expression=self.number(node.expression, result))

    _add = _sub = _mul = _mod = _arithmetic

    def _intdiv(self, node: exp.IntDiv) -> exp.Expression:
        return exp.IntDiv(this=self.number(node.this, BIGINT), expression=self.number(node.expression, BIGINT))

    def _div(self, node: exp.Div) -> exp.Expression:
        return exp.Div(this=_p(self.double(node.this)), expression=_p(self.double(node.expression)))

    def _neg(self, node: exp.Neg) -> exp.Expression:
        return exp.Neg(this=self.number(node.this, self.facts.of(node).type))

    def _unary_number(self, node: exp.Expression) -> exp.Expression:
        operand = self.facts.of(node.this)
        inner = self.double(node.this) if operand.type == DOUBLE else self.integer(node.this)
        return type(node)(this=inner)

    _abs = _sign = _unary_number

    def _floor_ceil(self, node: exp.Expression) -> exp.Expression:
        """FLOOR/CEIL of an integer is the integer itself: DuckDB's FLOOR(BIGINT) returns DOUBLE,
        whose cast back fails near 2^63 and loses digits beyond 2^53."""
        if self.facts.of(node.this).type == DOUBLE:
            return type(node)(this=self.double(node.this))
        return self.integer(node.this)

    _floor = _ceil = _floor_ceil

    def _round(self, node: exp.Round) -> exp.Expression:
        operand = self.facts.of(node.this)
        inner = self.double(node.this) if operand.type != BIGINT else self.integer(node.this)
        decimals = node.args.get("decimals")
        return exp.Round(this=inner, decimals=self.render(decimals) if decimals is not None else None)

    def _double_function(self, node: exp.Expression) -> exp.Expression:
        args = {k: self.double(v) for k, v in node.args.items() if isinstance(v, exp.Expression)}
        return type(node)(**args)

    _sqrt = _ln = _log = _exp = _pow = _double_function

    def _chosen(self, node: exp.Expression) -> exp.Expression:
        target = self.facts.operand[id(node)]
        values = [node.this, *node.expressions]
        rendered = [self.render_as(v, target) for v in values]
        return type(node)(this=rendered[0], expressions=rendered[1:])

    _least = _greatest = _coalesce = _chosen

    def _nullif(self, node: exp.Nullif) -> exp.Expression:
        target = self.facts.operand[id(node)]
        return exp.Nullif(this=self.render_as(node.this, target), expression=self.render_as(node.expression, target))

    def _case(self, node: exp.Case) -> exp.Expression:
        """Always a searched CASE: a simple CASE's comparisons each get their own conversion."""
        target = self.facts.operand[id(node)]
        operand = node.this
        branches = []
        for branch in node.args.get("ifs") or []:
            if operand is not None:
                compared = self.facts.operand[id(branch)]
                condition = exp.EQ(
                    this=_p(self.render_as(operand, compared)), expression=_p(self.render_as(branch.this, compared))
                )
            else:
                condition = self.render_as(branch.this, BOOLEAN)
            branches.append(exp.If(this=condition, true=self.render_as(branch.args["true"], target)))
        default = node.args.get("default")
        return exp.Case(ifs=branches, default=self.render_as(default, target) if default is not None else None)

    def _if(self, node: exp.If) -> exp.Expression:
        target = self.facts.operand[id(node)]
        false = node.args.get("false")
        return exp.Case(
            ifs=[exp.If(this=self.render_as(node.this, BOOLEAN), true=self.render_as(node.args["true"], target))],
            default=self.render_as(false, target) if false is not None else None,
        )

    def _text_function(self, node: exp.Expression) -> exp.Expression:
        args = {k: v for k, v in node.args.items() if v is not None}
        args["this"] = self.render_as(node.this, VARCHAR)
        if isinstance(args.get("expression"), exp.Expression):
            args["expression"] = self.render_as(node.expression, VARCHAR)
        return type(node)(**args)

    _lower = _upper = _length = _trim = _text_function

    def _substring(self, node: exp.Substring) -> exp.Expression:
        args = {"this": self.render_as(node.this, VARCHAR)}
        for key in ("start", "length"):
            if node.args.get(key) is not None:
                args[key] = self.render(node.args[key])
        return exp.Substring(**args)

    def _date_function(self, node: exp.Expression) -> exp.Expression:
        return type(node)(this=self._temporal(node.this))

    _year = _month = _day = _quarter = _dayofweek = _dayofweekiso = _date_function
    _dayofmonth = _dayofyear = _week = _weekofyear = _date_function

    def _temporal(self, node: exp.Expression) -> exp.Expression:
        typed = self.facts.of(node)
        return self.render_as(node, DATE) if typed.type == NULL else self.render(node)

    def _extract(self, node: exp.Extract) -> exp.Expression:
        return _date_part(node.this.name, self._temporal(node.expression))

    def _anonymous(self, node: exp.Anonymous) -> exp.Expression:  # date_part('part', d)
        part, value = node.expressions
        return _date_part(self.facts.of(part).constant.value, self._temporal(value))

    def _trunc(self, node: exp.Expression) -> exp.Expression:
        unit = node.args["unit"].name.upper()
        return exp.TimestampTrunc(this=self._temporal(node.this), unit=exp.Var(this=unit))

    _datetrunc = _timestamptrunc = _trunc

    def _timetostr(self, node: exp.TimeToStr) -> exp.Expression:
        return exp.TimeToStr(this=self._temporal(node.this), format=self.render(node.args["format"]))

    def _cast(self, node: exp.Expression) -> exp.Expression:
        typed = self.facts.of(node)
        return exp.TryCast(this=self.render(node.this), to=exp.DataType.build(typed.source or typed.type.name))

    _trycast = _cast

    def _function(self, node: exp.Expression) -> exp.Expression:
        raise AssertionError(f"no rendering for {type(node).__name__}")


def _date_part(part: str, value: exp.Expression) -> exp.Expression:
    return exp.Extract(this=exp.Var(this=DATE_PARTS[part.lower()].upper()), expression=value)
