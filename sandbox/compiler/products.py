"""CORR, COVAR_SAMP, COVAR_POP, REGR_SLOPE, REGR_INTERCEPT and REGR_COUNT of two bounded columns,
from noisy sums of products ("moments").

Every one of them is post-processing of at most six noisy sums over the rows where both columns
are non-NULL (DuckDB's rule for these aggregates): the count n and the sums of u, v, u*u, v*v
and u*v, where u = clamp(x) - c_x and v = clamp(y) - c_y are the deviations from the middles of
the bounds (for integers, the whole number at or below the middle). Centring keeps the
sensitivity small, as for VAR: a unit changes a sum of u*v by at most
max_rows x max|u| x max|v| = max_rows x (hx - lx)/2 x (hy - ly)/2, a quarter of what raw
products on [0, hi] would need, and covariances do not depend on the centre:

    C_xy = S_uv - S_u S_v / n    COVAR_POP = C_xy / n    COVAR_SAMP = C_xy / (n - 1)
    CORR = C_xy / sqrt(C_xx C_yy)    REGR_SLOPE(y, x) = C_xy / C_xx
    REGR_INTERCEPT(y, x) = (c_y + S_v / n) - slope (c_x + S_u / n)

Each product is quantized to an integer grid (step 1 for integer columns whose products fit in
GRID_UNITS, else the power of two that keeps every product within GRID_UNITS steps) and summed
exactly in BIGINT, as every sum is (planner.py); a product is rounded to the grid once per row,
a bias of at most half a step per row. Released values are clipped to what is possible (a
covariance within the product of the half-ranges, CORR in [-1, 1]); CORR and REGR_SLOPE are
NULL when a noisy variance is not positive (DuckDB: NULL for a constant column).

Intervals are conservative interval arithmetic: each of the k noisy sums at 1 - alpha / k (the
union bound), then sums, products and quotients of intervals (a quotient by an interval that
reaches 0 is unbounded: NULL ends, and the release says so). The bias bounding and clamping are
estimated to cause (DP metadata, intervals.py) widens them by an estimate, not a bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from sandbox import privacy
from sandbox.policy import Column
from sandbox.privacy.grid import clamp_bounds, clamped_sql, step_for
from sandbox.privacy.grid import sql_number as _num

__all__ = ["PAIRED", "describe", "formula", "interval", "levels", "moment_sql", "primitive", "weight"]

PAIRED: tuple[type[exp.Expression], ...] = (
    exp.Corr,
    exp.CovarSamp,
    exp.CovarPop,
    exp.RegrSlope,
    exp.RegrIntercept,
    exp.RegrCount,
)

# (power of x, power of y): the noisy sums each aggregate needs; x is the second argument
# (the regressor of REGR_*(y, x)), y the first
_COUNT, _X, _Y, _XX, _YY, _XY = (0, 0), (1, 0), (0, 1), (2, 0), (0, 2), (1, 1)
_NEEDS: dict[type[exp.Expression], tuple[tuple[int, int], ...]] = {
    exp.RegrCount: (_COUNT,),
    exp.CovarSamp: (_COUNT, _X, _Y, _XY),
    exp.CovarPop: (_COUNT, _X, _Y, _XY),
    exp.RegrSlope: (_COUNT, _X, _Y, _XY, _XX),
    exp.RegrIntercept: (_COUNT, _X, _Y, _XY, _XX),
    exp.Corr: (_COUNT, _X, _Y, _XY, _XX, _YY),
}
_NAMES = {
    exp.Corr: "corr",
    exp.CovarSamp: "covar_samp",
    exp.CovarPop: "covar_pop",
    exp.RegrSlope: "regr_slope",
    exp.RegrIntercept: "regr_intercept",
    exp.RegrCount: "regr_count",
}


def weight(node: exp.Expression) -> int:
    """How many noisy statistics the aggregate combines (its share of an output's union bound)."""
    return len(_NEEDS[type(node)])


def _canonical(powers: tuple[int, int], x: str, y: str) -> tuple[str, str, tuple[int, int]]:
    """One sum serves both orders of the same pair: COVAR(a, b) and CORR(b, a) share their sums."""
    if x <= y:
        return x, y, powers
    return y, x, (powers[1], powers[0])


def describe(node: exp.Expression, need: Callable[..., str], key_of) -> tuple[str, tuple[str, ...]]:
    """Register the sums an aggregate needs (need(kind=, column=, other=, powers=) -> id); its
    function name and their ids, in the order of _NEEDS."""
    y, x = key_of(node.this), key_of(node.expression)
    ids = []
    for powers in _NEEDS[type(node)]:
        first, second, canonical = _canonical(powers, x, y)
        ids.append(need(kind="moment", column=first, other=second, powers=canonical))
    return _NAMES[type(node)], tuple(ids)


@dataclass(frozen=True)
class _Factor:
    lo: float
    hi: float
    shift: float
    integer: bool

    @property
    def deviation(self) -> tuple[float, float]:
        return self.lo - self.shift, self.hi - self.shift


def _factor(column: Column) -> _Factor:
    lo, hi = clamp_bounds(column)
    shift = float(math.floor((lo + hi) / 2)) if column.is_integer else (lo + hi) / 2
    return _Factor(lo, hi, shift, column.is_integer)


def _range(deviation: tuple[float, float], power: int) -> tuple[float, float]:
    lo, hi = deviation
    if power == 0:
        return 1.0, 1.0
    if power == 1:
        return lo, hi
    return (0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi)), max(lo * lo, hi * hi)


def _product_range(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    corners = [p * q for p in a for q in b]
    return min(corners), max(corners)


def primitive(pid: str, need, columns: dict[str, Column], m: int, epsilon: float, internal: bool):
    """The noisy sum of u^p * v^q over the rows where both columns are non-NULL, on its grid."""
    from sandbox.compiler.plan import Primitive

    fx, fy = _factor(columns[need.column]), _factor(columns[need.other])
    px, py = need.powers
    t_lo, t_hi = _product_range(_range(fx.deviation, px), _range(fy.deviation, py))
    largest = max(abs(t_lo), abs(t_hi))
    integral = (px == 0 or fx.integer) and (py == 0 or fy.integer)
    step = step_for(largest, integral=integral)  # 1 for bounds of one value: every product is 0
    q_max = math.floor(largest / step + 0.5)  # DuckDB's ROUND: half away from zero
    # q_max <= 2**20 and registration caps a dataset at 2**40 rows: every sum fits in 64 bits.
    # At least 1: OpenDP's mechanisms take a sensitivity of at least 1 (as planner's sums).
    sensitivity = max(m * q_max, 1)
    return Primitive(
        pid,
        "moment",
        need.column,
        sensitivity,
        epsilon,
        privacy.laplace_scale(sensitivity, epsilon),
        step=step,
        lo=fx.lo,
        hi=fx.hi,
        shift=fx.shift,
        internal=internal,
        other=need.other,
        powers=need.powers,
        other_lo=fy.lo,
        other_hi=fy.hi,
        other_shift=fy.shift,
    )


def moment_sql(p, ref: str, other_ref: str) -> str:
    """Exact integer sum of the quantized products, over the rows where both values are present."""
    factors = []
    for column, lo, hi, shift, power in (
        (ref, p.lo, p.hi, p.shift, p.powers[0]),
        (other_ref, p.other_lo, p.other_hi, p.other_shift, p.powers[1]),
    ):
        if power == 0:
            continue
        value = clamped_sql(column, lo, hi)
        deviation = f"({value} - {_num(shift)})" if shift else value
        factors.extend([deviation] * power)
    present = f"{ref} IS NOT NULL AND {other_ref} IS NOT NULL"
    if not factors:
        return f"CAST(COALESCE(SUM(CASE WHEN {present} THEN 1 END), 0) AS BIGINT)"
    term = " * ".join(factors)
    return (
        f"CAST(COALESCE(SUM(CASE WHEN {present} THEN CAST(ROUND(({term}) / {_num(p.step)}) AS BIGINT) END), 0) "
        "AS BIGINT)"
    )


# -- post-processing over the released sums ---------------------------------------------------


@dataclass(frozen=True)
class _Sums:
    """SQL of the released sums of one aggregate (named by what they are for x and y)."""

    n: str
    x: str = "0"
    y: str = "0"
    xx: str = "0"
    yy: str = "0"
    xy: str = "0"


def _sums(ids: dict[tuple[int, int], str]) -> _Sums:
    return _Sums(**{name: ids[powers] for name, powers in zip(
        ("n", "x", "y", "xy", "xx", "yy"), (_COUNT, _X, _Y, _XY, _XX, _YY), strict=True) if powers in ids})


def _ids(node: exp.Expression, ctx) -> tuple[dict[tuple[int, int], str], _Factor, _Factor]:
    """The released sums of an aggregate by (power of x, power of y), and its factors."""
    y, x = ctx.key_of(node.this), ctx.key_of(node.expression)
    found = {}
    for powers in _NEEDS[type(node)]:
        first, second, canonical = _canonical(powers, x, y)
        pid = ctx.needs[("moment", first, 1, None, second, canonical)]
        found[powers] = pid
    return found, _factor(ctx.columns[x]), _factor(ctx.columns[y])


def formula(node: exp.Expression, ctx) -> str:
    """The aggregate as SQL over the released sums, clipped to what is possible."""
    ids, fx, fy = _ids(node, ctx)
    s = _sums(ids)
    if isinstance(node, exp.RegrCount):
        return f"CASE WHEN ({s.n}) IS NULL THEN NULL ELSE GREATEST({s.n}, 0) END"
    n = f"GREATEST({s.n}, 1)"
    cxy = f"({s.xy} - {s.x} * {s.y} / {n})"
    hx, hy = (fx.hi - fx.lo) / 2, (fy.hi - fy.lo) / 2
    if isinstance(node, exp.CovarPop):
        return _clip(f"{cxy} / {n}", hx * hy)
    if isinstance(node, exp.CovarSamp):
        inflate = f"GREATEST({s.n}, 2) / (GREATEST({s.n}, 2) - 1)"  # a sample covariance can exceed hx*hy
        return _clip(f"{cxy} / GREATEST({s.n} - 1, 1)", f"{_num(hx * hy)} * {inflate}")
    cxx = f"GREATEST({s.xx} - {s.x} * {s.x} / {n}, 0)"
    if isinstance(node, exp.Corr):
        cyy = f"GREATEST({s.yy} - {s.y} * {s.y} / {n}, 0)"
        return f"CASE WHEN {cxx} > 0 AND {cyy} > 0 THEN {_clip(f'{cxy} / SQRT({cxx} * {cyy})', 1)} END"
    slope = f"CASE WHEN {cxx} > 0 THEN {cxy} / {cxx} END"
    if isinstance(node, exp.RegrSlope):
        return slope
    mean_x, mean_y = f"({_num(fx.shift)} + {s.x} / {n})", f"({_num(fy.shift)} + {s.y} / {n})"
    return f"({mean_y} - ({slope}) * {mean_x})"


def _clip(value: str, bound: float | str) -> str:
    """Into [-bound, bound], NULL kept NULL (GREATEST and LEAST skip NULLs, which would turn a
    suppressed cell into a bound)."""
    bound = _num(bound) if isinstance(bound, float | int) else bound
    return f"CASE WHEN ({value}) IS NULL THEN NULL ELSE LEAST(GREATEST({value}, -({bound})), {bound}) END"


# -- intervals --------------------------------------------------------------------------------

_Iv = tuple[str | None, str | None]
_PIECE = re.compile(r"__iv\d+")


class _Arith:
    """Interval arithmetic as SQL over the released table. Every end longer than a name is
    computed once, as a column of its own (`pieces`, which generate.output_sql projects level by
    level before the output): written out in place, ends that use other ends several times would
    grow exponentially with the depth of the formula."""

    def __init__(self, pieces: dict[str, str]) -> None:
        self.pieces = pieces

    def piece(self, sql: str | None) -> str | None:
        if sql is None or len(sql) <= 24:
            return sql
        return self.pieces.setdefault(sql, f"__iv{len(self.pieces)}")

    def iv(self, lo: str | None, hi: str | None) -> _Iv:
        return self.piece(lo), self.piece(hi)

    def add(self, a: _Iv, b: _Iv) -> _Iv:
        return self.iv(_join(a[0], "+", b[0]), _join(a[1], "+", b[1]))

    def sub(self, a: _Iv, b: _Iv) -> _Iv:
        return self.iv(_join(a[0], "-", b[1]), _join(a[1], "-", b[0]))

    def mul(self, a: _Iv, b: _Iv) -> _Iv:
        """Corners; an end that is NULL at run time (unbounded) makes both ends unbounded (LEAST
        and GREATEST would skip it)."""
        if None in a or None in b:
            return None, None
        corners = ", ".join(f"{p} * {q}" for p in a for q in b)
        unbounded = " OR ".join(f"{end} IS NULL" for end in (*a, *b))
        return self.iv(
            f"CASE WHEN {unbounded} THEN NULL ELSE LEAST({corners}) END",
            f"CASE WHEN {unbounded} THEN NULL ELSE GREATEST({corners}) END",
        )

    def square(self, a: _Iv) -> _Iv:
        lo, hi = a
        return self.iv(
            f"CASE WHEN {lo} <= 0 AND {hi} >= 0 THEN 0 ELSE LEAST({lo} * {lo}, {hi} * {hi}) END",
            f"GREATEST({lo} * {lo}, {hi} * {hi})",
        )

    def div_positive(self, a: _Iv, d: _Iv) -> _Iv:
        """a / d for d an interval of positive numbers; unbounded when d may reach 0."""
        if None in a or None in d:
            return None, None
        (lo, hi), (dlo, dhi) = a, d
        positive = f"{dlo} > 0"
        return self.iv(
            f"CASE WHEN {positive} THEN CASE WHEN {lo} >= 0 THEN {lo} / {dhi} ELSE {lo} / {dlo} END END",
            f"CASE WHEN {positive} THEN CASE WHEN {hi} >= 0 THEN {hi} / {dlo} ELSE {hi} / {dhi} END END",
        )

    def widen(self, a: _Iv, by: float) -> _Iv:
        if by <= 0:
            return a
        return self.iv(_join(a[0], "-", repr(by)), _join(a[1], "+", repr(by)))

    def at_least_zero(self, a: _Iv) -> _Iv:
        """Both ends >= 0 (a variance): a noisy upper end below 0 would make SQRT fail."""
        return self.iv(f"GREATEST({a[0]}, 0)", f"GREATEST({a[1]}, 0)")

    def clip(self, a: _Iv, lo: float, hi: float) -> _Iv:
        """Both ends into [lo, hi]: an unbounded end becomes the bound (the value is clipped there too)."""

        def clip(end: str | None, otherwise: float) -> str:
            if end is None:
                return repr(otherwise)
            return f"CASE WHEN {end} IS NULL THEN {otherwise!r} ELSE LEAST(GREATEST({end}, {lo!r}), {hi!r}) END"

        return self.iv(clip(a[0], lo), clip(a[1], hi))


def levels(pieces: dict[str, str]) -> list[list[tuple[str, str]]]:
    """The pieces as (name, SQL) in levels: each uses only pieces of earlier levels."""
    level: dict[str, int] = {}
    for sql, name in pieces.items():  # in order of creation: a piece uses only earlier ones
        level[name] = 1 + max((level[used] for used in _PIECE.findall(sql)), default=-1)
    found: list[list[tuple[str, str]]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for sql, name in pieces.items():
        found[level[name]].append((name, sql))
    return found


def _join(a: str | None, op: str, b: str | None) -> str | None:
    return None if a is None or b is None else f"({a} {op} {b})"


def _bias(facts) -> tuple[float, float, float]:
    """(share of rows left out, share of values moved by clamping x mean distance) of a column's
    facts, and its half-range: what the bias terms below are built from."""
    a, b = facts.bounds
    moved = facts.above * facts.above_excess + facts.below * facts.below_excess
    return facts.rows_left_out, moved, (b - a) / 2


def interval(node: exp.Expression, ctx, column_facts: Callable[[str], object], alpha: float) -> _Iv:
    """The 95% interval of one aggregate: each of its k noisy sums at alpha / k, combined by
    interval arithmetic; then widened by the estimated bias of bounding and clamping."""
    ids, fx, fy = _ids(node, ctx)
    k = len(ids)
    ar = _Arith(ctx.pieces)

    def iv(powers: tuple[int, int]) -> _Iv:
        p = ctx.by_id[ids[powers]]
        w = privacy.half_width(p.scale, alpha / k) * p.step
        return f"({p.id} - {w!r})", f"({p.id} + {w!r})"

    n_lo, n_hi = iv(_COUNT)
    if isinstance(node, exp.RegrCount):
        d = column_facts(ctx.key_of(node.expression)).rows_left_out
        hi = f"GREATEST({n_hi}, 0)" if not d else f"GREATEST({n_hi} / {1 - d!r}, 0)"
        return f"GREATEST({n_lo}, 0)", hi
    n = ar.iv(f"GREATEST({n_lo}, 1)", f"GREATEST({n_hi}, 1)")
    sx, sy, sxy = iv(_X), iv(_Y), iv(_XY)
    cxy = ar.sub(sxy, ar.div_positive(ar.mul(sx, sy), n))
    dx, mx, hx = _bias(column_facts(ctx.key_of(node.expression)))
    dy, my, hy = _bias(column_facts(ctx.key_of(node.this)))
    d = max(dx, dy)
    # estimates: a share d of rows left out moves a mean of products of deviations (each within
    # 2h x 2h of the others) by about 2d x 4 hx hy; a value moved by clamping moves its products by
    # its distance times the other factor's range
    cov_slack = 8 * d * hx * hy + 2 * (mx * 2 * hy + my * 2 * hx)
    if isinstance(node, exp.CovarPop):
        return ar.clip(ar.widen(ar.div_positive(cxy, n), cov_slack), -hx * hy, hx * hy)
    if isinstance(node, exp.CovarSamp):
        return ar.widen(ar.div_positive(cxy, ar.iv(f"GREATEST({n_lo} - 1, 1)", f"GREATEST({n_hi} - 1, 1)")), cov_slack)
    cov = ar.widen(ar.div_positive(cxy, n), cov_slack)
    cxx = ar.sub(iv(_XX), ar.div_positive(ar.square(sx), n))
    var_x = ar.at_least_zero(ar.widen(ar.div_positive(cxx, n), 8 * d * hx * hx + mx * (mx + 4 * hx)))
    if isinstance(node, exp.Corr):
        cyy = ar.sub(iv(_YY), ar.div_positive(ar.square(sy), n))
        var_y = ar.at_least_zero(ar.widen(ar.div_positive(cyy, n), 8 * d * hy * hy + my * (my + 4 * hy)))
        spread = ar.iv(f"SQRT({var_x[0]} * {var_y[0]})", f"SQRT({var_x[1]} * {var_y[1]})")
        return ar.clip(ar.div_positive(cov, spread), -1.0, 1.0)
    slope = ar.div_positive(cov, var_x)
    if isinstance(node, exp.RegrSlope):
        return slope
    mean_x = ar.widen(ar.add((_num(fx.shift), _num(fx.shift)), ar.div_positive(sx, n)), 2 * d * hx + mx)
    mean_y = ar.widen(ar.add((_num(fy.shift), _num(fy.shift)), ar.div_positive(sy, n)), 2 * d * hy + my)
    return ar.sub(mean_y, ar.mul(slope, mean_x))
