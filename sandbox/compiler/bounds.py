"""Public bounds of a row-level numeric expression, so that it can be aggregated like a column
with policy bounds: `SUM(CASE WHEN age >= 60 THEN 1 ELSE 0 END)`, `AVG(income * 12)`,
`SUM(COALESCE(x, 0))`, and the analyst's own clamp `LEAST(GREATEST(x, lo), hi)`.

Interval arithmetic over the bound, typed tree (bind.py): a column contributes its policy bounds
(within the query's own clamp, if any), a constant is a point, CASE / IF / COALESCE the union of
their values (conditions are not values and are not bounded), LEAST / GREATEST the least / greatest
of their operands' ends (so an analyst's clamp tightens what it clamps), arithmetic the corners of
its operands' intervals. A side that cannot be bounded (a column without bounds, a divisor whose
interval contains 0, a function of unbounded range) is infinite, and a clamp can still bound it.

Privacy never rests on these bounds being right about the data: the generated SQL clamps the
expression's value to them before quantizing (generate.py), exactly as a policy column is clamped
to its bounds, so one unit moves a sum by at most max_rows x the largest bound whatever its rows
hold. They are the analyst's public promise about the values, as a policy's bounds are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from sandbox.compiler.types import BIGINT, BOOLEAN, DOUBLE
from sandbox.policy import Column, Role

if TYPE_CHECKING:
    from sandbox.compiler.scope import Bound

__all__ = ["Range", "derive", "expression_column", "never_null", "affine", "plain_column", "value_columns"]

INF = math.inf


@dataclass(frozen=True)
class Range:
    """[lo, hi] of the values an expression takes (an infinite side is unknown); `empty` for an
    expression that is always NULL (NULL adds nothing to a sum); `why` says what left a side
    unbounded, for the refusal."""

    lo: float = -INF
    hi: float = INF
    empty: bool = False
    why: str = ""

    @property
    def finite(self) -> bool:
        """Usable as bounds: finite, and small enough that squares and spreads stay finite."""
        return not self.empty and max(abs(self.lo), abs(self.hi)) <= LARGEST


LARGEST = 1e100  # a variance squares the spread of the bounds: (2e100)**2 is still a finite double


EMPTY = Range(empty=True)


def plain_column(node: exp.Expression) -> exp.Column | None:
    """The column an aggregate's argument is, up to parentheses; None for an expression."""
    while isinstance(node, exp.Paren):
        node = node.this
    return node if isinstance(node, exp.Column) else None


def derive(node: exp.Expression, bound: Bound) -> Range:
    """The bounds of `node`'s values (see the module docstring)."""
    typed = bound.typed(node)
    if typed.constant is not None and not isinstance(node, exp.Column):
        value = typed.constant.value
        if value is None:
            return EMPTY
        if isinstance(value, bool):
            return Range(float(value), float(value))
        if isinstance(value, int | float) and not math.isnan(value):
            return Range(float(value), float(value))
        return Range(why=f"the constant {node.sql('duckdb')[:40]} is not a number")
    rule = _RULES.get(type(node))
    found = rule(node, bound) if rule is not None else _unknown(node, bound)
    if typed.type == BOOLEAN and not found.empty:
        found = _meet(found, Range(0.0, 1.0))
    return found


def expression_column(node: exp.Expression, bound: Bound, found: Range | None = None) -> Column:
    """A policy column standing for an aggregated expression: its type and derived bounds, so
    the planner quantizes, clamps and bounds sensitivity exactly as for a column."""
    typed = bound.typed(node)
    integer = typed.type in (BIGINT, BOOLEAN)
    found = found or derive(node, bound)
    if not found.finite or typed.type not in (BIGINT, DOUBLE, BOOLEAN):
        return Column(role=Role.dimension, type="BIGINT" if integer else _policy_type(typed.type.name))
    lo, hi = found.lo, found.hi
    if integer:
        lo, hi = _ceil(lo), _floor(hi)
        hi = max(lo, hi)
    if lo == hi:  # a constant value: bounds must be an interval; 0 is the natural other end
        lo, hi = (min(lo, 0.0), max(hi, 0.0)) if lo != 0 else (0.0, 1.0)
    return Column(role=Role.measure, type="BIGINT" if integer else "DOUBLE", bounds=(lo, hi))


def _policy_type(name: str) -> str:
    return name if name in ("VARCHAR", "DATE", "TIMESTAMP", "BOOLEAN", "DOUBLE", "BIGINT") else "VARCHAR"


def never_null(node: exp.Expression, bound: Bound, non_null: frozenset[str] | set[str]) -> bool:
    """The expression is NULL on no row: COUNT(expression) is then COUNT(*) and shares its noisy
    count. `non_null` names the columns verified not null (bare names, one dataset only)."""
    while isinstance(node, exp.Paren):
        node = node.this
    typed = bound.typed(node)
    if typed.constant is not None and not isinstance(node, exp.Column):
        return typed.constant.value is not None
    if id(node) in bound.facts.guarded:
        return False  # TRY gives NULL where the operation would fail
    if isinstance(node, exp.Column):
        return not node.table and node.name in non_null
    if isinstance(node, exp.Case):
        default = node.args.get("default")
        results = [b.args["true"] for b in node.args.get("ifs") or []]
        return default is not None and all(never_null(r, bound, non_null) for r in [*results, default])
    if isinstance(node, exp.If):
        false = node.args.get("false")
        return false is not None and all(never_null(r, bound, non_null) for r in (node.args["true"], false))
    if isinstance(node, exp.Coalesce | exp.Least | exp.Greatest):  # NULLs are skipped: one operand suffices
        return any(never_null(a, bound, non_null) for a in [node.this, *node.expressions])
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div):
        return never_null(node.this, bound, non_null) and never_null(node.expression, bound, non_null)
    if isinstance(node, exp.Neg | exp.Abs | exp.Floor | exp.Ceil | exp.Sign):
        return never_null(node.this, bound, non_null)
    return False


def affine(node: exp.Expression, bound: Bound) -> tuple[float, float, exp.Column] | None:
    """(a, b, x) when the expression is a * x + b of one column x with constants a != 0 and b
    (x * 12, x / 1000, -x, x + 5, CAST(x AS DOUBLE)): its values beyond its derived bounds are
    exactly x's beyond x's, so the DP metadata's clamping facts of x carry over (intervals.py)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        return 1.0, 0.0, node
    if isinstance(node, exp.Cast | exp.TryCast) and bound.typed(node).type == DOUBLE:
        return affine(node.this, bound) if bound.typed(node.this).type in (BIGINT, DOUBLE) else None
    if isinstance(node, exp.Neg):
        inner = affine(node.this, bound)
        return None if inner is None else (-inner[0], -inner[1], inner[2])
    if not isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div):
        return None
    left, right = _number(node.this, bound), _number(node.expression, bound)
    if (left is None) == (right is None):
        return None
    inner = affine(node.expression if left is not None else node.this, bound)
    if inner is None:
        return None
    a, b, x = inner
    c = left if left is not None else right
    if isinstance(node, exp.Add):
        return a, b + c, x
    if isinstance(node, exp.Sub):
        return (a, b - c, x) if right is not None else (-a, c - b, x)
    if isinstance(node, exp.Mul):
        return (a * c, b * c, x) if c != 0 else None
    return (a / c, b / c, x) if right is not None and c != 0 else None


def _number(node: exp.Expression, bound: Bound) -> float | None:
    constant = bound.typed(node).constant
    value = constant.value if constant is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


_PASS_THROUGH = (exp.Paren, exp.Neg, exp.Abs, exp.Floor, exp.Ceil, exp.Round, exp.Cast, exp.TryCast, exp.Nullif)
_PASS_THROUGH += (exp.Sqrt, exp.Exp, exp.Ln)


def value_columns(node: exp.Expression) -> list[exp.Column]:
    """The columns whose values become the expression's value (not those only in conditions,
    nor under the analyst's own LEAST/GREATEST, which clamps them itself): where a value beyond
    its policy bound is clamped along with the expression."""
    if isinstance(node, exp.Column):
        return [node]
    if isinstance(node, exp.Case):
        parts = [b.args["true"] for b in node.args.get("ifs") or []] + [node.args.get("default")]
    elif isinstance(node, exp.If):
        parts = [node.args.get("true"), node.args.get("false")]
    elif isinstance(node, exp.Coalesce):
        parts = [node.this, *node.expressions]
    elif isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.IntDiv):
        parts = [node.this, node.expression]
    elif isinstance(node, _PASS_THROUGH):
        parts = [node.this]
    else:
        parts = []
    return [c for part in parts if part is not None for c in value_columns(part)]


# -- interval arithmetic ----------------------------------------------------------------------
def _clean(lo: float, hi: float, why: str = "") -> Range:
    """NaN from inf - inf or 0 x inf means nothing is known."""
    if math.isnan(lo):
        lo = -INF
    if math.isnan(hi):
        hi = INF
    return Range(lo, hi, why=why if not (math.isfinite(lo) and math.isfinite(hi)) else "")


def _floor(value: float) -> float:
    return float(math.floor(value)) if math.isfinite(value) else value


def _ceil(value: float) -> float:
    return float(math.ceil(value)) if math.isfinite(value) else value


def _why(*ranges: Range) -> str:
    return next((r.why for r in ranges if r.why), "")


def _meet(a: Range, b: Range) -> Range:
    return _clean(max(a.lo, b.lo), min(a.hi, b.hi), a.why)


def _union(ranges: list[Range]) -> Range:
    ranges = [r for r in ranges if not r.empty]
    if not ranges:
        return EMPTY
    return _clean(min(r.lo for r in ranges), max(r.hi for r in ranges), _why(*ranges))


def _product(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b  # 0 x inf is 0 here: the value is 0 or finite


def _corners(a: Range, b: Range, op) -> Range:
    values = [op(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    values = [v for v in values if not math.isnan(v)]
    if len(values) < 4:
        return Range(why=_why(a, b))
    return _clean(min(values), max(values), _why(a, b))


def _operands(node: exp.Expression, bound: Bound) -> tuple[Range, Range] | None:
    a, b = derive(node.this, bound), derive(node.expression, bound)
    return None if a.empty or b.empty else (a, b)


def _column(node: exp.Column, bound: Bound) -> Range:
    ref = bound.ref(node)
    column = bound.output(node).column if ref is not None else None
    if column is not None and column.bounds is not None and column.is_numeric:
        lo, hi = column.bounds
        return Range(float(lo), float(hi))
    return Range(why=f"column {node.name!r} has no public bounds")


def _paren(node: exp.Paren, bound: Bound) -> Range:
    return derive(node.this, bound)


def _neg(node: exp.Neg, bound: Bound) -> Range:
    a = derive(node.this, bound)
    return a if a.empty else Range(-a.hi, -a.lo, why=a.why)


def _add(node: exp.Add, bound: Bound) -> Range:
    pair = _operands(node, bound)
    return EMPTY if pair is None else _clean(pair[0].lo + pair[1].lo, pair[0].hi + pair[1].hi, _why(*pair))


def _sub(node: exp.Sub, bound: Bound) -> Range:
    pair = _operands(node, bound)
    return EMPTY if pair is None else _clean(pair[0].lo - pair[1].hi, pair[0].hi - pair[1].lo, _why(*pair))


def _mul(node: exp.Mul, bound: Bound) -> Range:
    pair = _operands(node, bound)
    return EMPTY if pair is None else _corners(*pair, _product)


def _div(node: exp.Div, bound: Bound) -> Range:
    pair = _operands(node, bound)
    if pair is None:
        return EMPTY
    a, b = pair
    if b.lo <= 0 <= b.hi:
        text = node.expression.sql("duckdb")[:40]
        return Range(why=f"the divisor {text} can be 0 (its bounds are [{_show(b.lo)}, {_show(b.hi)}])")
    return _corners(a, b, lambda x, y: x / y if math.isfinite(y) else 0.0)


def _intdiv(node: exp.IntDiv, bound: Bound) -> Range:
    found = _div(node, bound)
    return found if found.empty else _clean(_floor(found.lo), _ceil(found.hi), found.why)


def _mod(node: exp.Mod, bound: Bound) -> Range:
    pair = _operands(node, bound)
    if pair is None:
        return EMPTY
    a, b = pair
    top = max(abs(b.lo), abs(b.hi))
    return _clean(0.0 if a.lo >= 0 else -top, 0.0 if a.hi <= 0 else top, _why(a, b))


def _abs(node: exp.Abs, bound: Bound) -> Range:
    a = derive(node.this, bound)
    if a.empty:
        return a
    low = 0.0 if a.lo <= 0 <= a.hi else min(abs(a.lo), abs(a.hi))
    return _clean(low, max(abs(a.lo), abs(a.hi)), a.why)


def _sign(node: exp.Sign, bound: Bound) -> Range:
    return Range(-1.0, 1.0)


def _rounded(node: exp.Expression, bound: Bound) -> Range:
    """FLOOR, CEIL and ROUND(x, n) are monotone: the ends rounded outwards to their grid."""
    a = derive(node.this, bound)
    if a.empty:
        return a
    decimals = node.args.get("decimals") if isinstance(node, exp.Round) else None
    n = bound.typed(decimals).constant.value if decimals is not None else 0
    scale = 10.0**n
    return _clean(_floor(a.lo * scale) / scale, _ceil(a.hi * scale) / scale, a.why)


def _sqrt(node: exp.Sqrt, bound: Bound) -> Range:
    a = derive(node.this, bound)
    if a.empty:
        return a
    if a.lo < 0:
        return Range(why=f"SQRT of {node.this.sql('duckdb')[:40]}, which can be negative, is not a number")
    return _clean(math.sqrt(a.lo), math.sqrt(a.hi), a.why)


def _exp(node: exp.Exp, bound: Bound) -> Range:
    a = derive(node.this, bound)
    if a.empty:
        return a
    lo, hi = _exp_or_inf(a.lo), _exp_or_inf(a.hi)
    return _clean(lo, hi, a.why if math.isfinite(hi) or not math.isfinite(a.hi) else "EXP of a large value overflows")


def _exp_or_inf(x: float) -> float:
    """e^x as DuckDB computes it: infinity past the largest double (not Python's OverflowError,
    which once escaped the compiler for EXP of a constant above 709, both ends overflowing)."""
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def _ln(node: exp.Ln, bound: Bound) -> Range:
    a = derive(node.this, bound)
    if a.empty:
        return a
    if a.lo <= 0:
        return Range(why=f"LN of {node.this.sql('duckdb')[:40]}, which can be 0 or negative, is unbounded")
    return _clean(math.log(a.lo), math.log(a.hi), a.why)


def _chosen(node: exp.Expression, bound: Bound) -> Range:
    """CASE, IF, COALESCE, NULLIF: one of their values (or NULL)."""
    if isinstance(node, exp.Case):
        values = [b.args["true"] for b in node.args.get("ifs") or []]
        values += [node.args["default"]] if node.args.get("default") is not None else []
    elif isinstance(node, exp.If):
        values = [node.args["true"], *([node.args["false"]] if node.args.get("false") is not None else [])]
    elif isinstance(node, exp.Nullif):
        values = [node.this]
    else:
        values = [node.this, *node.expressions]
    return _union([derive(v, bound) for v in values])


def _least(node: exp.Expression, bound: Bound) -> Range:
    ranges = [r for r in (derive(a, bound) for a in [node.this, *node.expressions]) if not r.empty]
    if not ranges:
        return EMPTY
    return _clean(min(r.lo for r in ranges), min(r.hi for r in ranges), _why(*ranges))


def _greatest(node: exp.Expression, bound: Bound) -> Range:
    ranges = [r for r in (derive(a, bound) for a in [node.this, *node.expressions]) if not r.empty]
    if not ranges:
        return EMPTY
    return _clean(max(r.lo for r in ranges), max(r.hi for r in ranges), _why(*ranges))


def _cast(node: exp.Expression, bound: Bound) -> Range:
    source = bound.typed(node.this)
    if source.type == BOOLEAN:
        return Range(0.0, 1.0)
    if not source.type.numeric:
        return Range(why=f"{node.sql('duckdb')[:40]} converts {source.type} to a number, which has no bounds")
    a = derive(node.this, bound)
    if a.empty or bound.typed(node).type != BIGINT:
        return a
    return _clean(_floor(a.lo), _ceil(a.hi), a.why)  # a DOUBLE is rounded to the nearest integer


def _unknown(node: exp.Expression, bound: Bound) -> Range:
    return Range(why=f"{node.sql('duckdb')[:40]} has no bounds the sandbox can derive")


def _show(value: float) -> str:
    return f"{value:g}"


_RULES = {
    exp.Column: _column,
    exp.Paren: _paren,
    exp.Neg: _neg,
    exp.Add: _add,
    exp.Sub: _sub,
    exp.Mul: _mul,
    exp.Div: _div,
    exp.IntDiv: _intdiv,
    exp.Mod: _mod,
    exp.Abs: _abs,
    exp.Sign: _sign,
    exp.Floor: _rounded,
    exp.Ceil: _rounded,
    exp.Round: _rounded,
    exp.Sqrt: _sqrt,
    exp.Exp: _exp,
    exp.Ln: _ln,
    exp.Case: _chosen,
    exp.If: _chosen,
    exp.Coalesce: _chosen,
    exp.Nullif: _chosen,
    exp.Least: _least,
    exp.Greatest: _greatest,
    exp.Cast: _cast,
    exp.TryCast: _cast,
}
