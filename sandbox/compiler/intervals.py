"""An interval on every released number: noise, and the bias bounding and clamping are estimated
to cause, as SQL over the released (noisy) table. Post-processing: it costs no privacy.

Noise. Each noisy statistic contributes its exact discrete-Laplace quantile (OpenDP's accuracy);
an output that combines k of them (AVG: a sum and a count; VAR: a sum of squares, a sum and a
count; a quantile: its rank error and a count; `SUM(x) / COUNT(*)`: two) takes each at level
1 - 0.05/k, so the union bound keeps the whole at 95% or more. Arithmetic over aggregates is
interval arithmetic (exact for sums and differences, conservative for products and ratios; a
ratio whose denominator's interval contains 0 has no finite interval: NULL ends mean unbounded).

Bias (estimates from the DP statistics released at registration, sandbox/metadata.py, so also
private). `rows` is the share of rows contribution bounding is estimated to leave out: counts
and sums of non-negative values can only come out low, so the upper end is divided by
(1 - rows); an average moves by at most `rows` times the values' spread. Values beyond the
clamping bounds move a sum by (count x share beyond x mean distance beyond) and an average by
(share beyond x mean distance beyond), on their side. Quantiles: the mechanism's rank error
(records, 95%) and the rows left out, as a share of the count, over the values' density near the
released value. Points and ends are clipped to what the bounds make possible (a count >= 0, an
average inside its bounds when nothing is clamped), which is free post-processing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from sandbox import privacy
from sandbox.compiler.plan import Primitive
from sandbox.compiler.vocabulary import is_aggregate
from sandbox.privacy.grid import sql_number as _num

__all__ = ["Bias", "ColumnFacts", "Interval"]

LEVEL = 0.05


@dataclass(frozen=True)
class ColumnFacts:
    """Public facts about one aggregated column: its bounds in this query, and what the DP
    metadata estimates about it (None where there is no metadata)."""

    bounds: tuple[float, float]
    rows_left_out: float = 0.0  # share of this column's rows bounding leaves out
    below: float = 0.0  # share of values below the lower bound (clamped up)
    above: float = 0.0
    below_excess: float = 0.0  # their mean distance below it
    above_excess: float = 0.0
    spread: float | None = None  # estimated standard deviation of the clamped values
    density: tuple[tuple[float, float], ...] | None = None  # (upper edge, share per unit of value)


@dataclass(frozen=True)
class Bias:
    """What the whole query's bounding leaves out (counts), and per column facts."""

    rows_left_out: float = 0.0
    columns: dict[str, ColumnFacts] = field(default_factory=dict)


Interval = tuple[str | None, str | None]  # SQL of the lower and upper end (None: unbounded)
Share = Callable[[str], str]  # a complete expression used more than once -> what to write for it


def _same(sql: str) -> str:
    return sql


def _w(p: Primitive, alpha: float, round_to: int = 1) -> float:
    width = privacy.half_width(p.scale, alpha) * p.step
    if p.kind in ("count", "units", "distinct") and round_to > 1:
        width += round_to / 2
    return width


def at_least(value: str, bound: float | str) -> str:
    """GREATEST(value, bound), NULL kept NULL (DuckDB's GREATEST skips NULLs: GREATEST(NULL, 0) is
    0, which would turn a suppressed cell into a bound)."""
    return f"CASE WHEN ({value}) IS NULL THEN NULL ELSE GREATEST({value}, {bound}) END"


def at_most(value: str, bound: float | str) -> str:
    return f"CASE WHEN ({value}) IS NULL THEN NULL ELSE LEAST({value}, {bound}) END"


def _greatest(*parts: str | None) -> str | None:
    return None if any(p is None for p in parts) else f"GREATEST({', '.join(parts)})"


def _least(*parts: str | None) -> str | None:
    return None if any(p is None for p in parts) else f"LEAST({', '.join(parts)})"


def _op(a: str | None, symbol: str, b: str | None) -> str | None:
    return None if a is None or b is None else f"({a} {symbol} {b})"


def count_interval(value: str, p: Primitive, alpha: float, rows: float, round_to: int) -> Interval:
    w = _w(p, alpha, round_to)
    lo = at_least(f"{value} - {w!r}", 0)
    hi = f"({value} + {w!r})"
    if rows > 0:
        hi = f"({hi} / {1 - rows!r})"
    return lo, at_least(hi, 0)


def sum_interval(value: str, w: float, facts: ColumnFacts, count: str | None, *, share: Share = _same) -> Interval:
    a, b = facts.bounds
    lo, hi = f"({value} - {w!r})", f"({value} + {w!r})"
    d = facts.rows_left_out
    if d > 0:
        if a >= 0:
            hi = f"({hi} / {1 - d!r})"
        elif b <= 0:
            lo = f"({lo} / {1 - d!r})"
        else:
            extra = f"(ABS({value}) * {d / (1 - d)!r})"
            lo, hi = f"({lo} - {extra})", f"({hi} + {extra})"
    if facts.above or facts.below:
        n = count if count is not None else f"(ABS({value}) / {max(abs((a + b) / 2), 1e-9)!r})"
        if facts.above:
            hi = f"({hi} + GREATEST({n}, 0) * {facts.above * facts.above_excess!r})"
        if facts.below:
            lo = f"({lo} - GREATEST({n}, 0) * {facts.below * facts.below_excess!r})"
    # the released sum is clipped to the sign its bounds make certain (generate._formula), so its
    # interval reaches that side too, whatever the noise (wider, never narrower: still 95%)
    if a >= 0:
        lo, hi = (lo if facts.below else at_least(share(lo), 0)), at_least(share(hi), 0)
    elif b <= 0:
        lo, hi = at_most(share(lo), 0), (hi if facts.above else at_most(share(hi), 0))
    return lo, hi


def avg_interval(
    value: str, s: Primitive, n: Primitive, alpha: float, facts: ColumnFacts, *, share: Share = _same
) -> Interval:
    """Union bound over the noisy (centred) sum and count: with v = sum / count the released
    mean's deviation from the centre, |error| <= (w_sum + |v| w_count) / (count - w_count)."""
    a, b = facts.bounds
    ws, wn = _w(s, alpha / 2), _w(n, alpha / 2)
    deviation = f"ABS({s.id} / GREATEST({n.id}, 1))"
    width = share(f"LEAST(({ws!r} + {deviation} * {wn!r}) / GREATEST({n.id} - {wn!r}, 1), {_num(b - a)})")
    lo, hi = f"({value} - {width})", f"({value} + {width})"
    if facts.rows_left_out > 0:
        shift = facts.rows_left_out * 2 * (facts.spread if facts.spread is not None else (b - a) / 2)
        lo, hi = f"({lo} - {shift!r})", f"({hi} + {shift!r})"
    lo_clip = a - facts.below * facts.below_excess if facts.below else a
    hi_clip = b + facts.above * facts.above_excess if facts.above else b
    if facts.above:
        hi = f"({hi} + {facts.above * facts.above_excess!r})"
    if facts.below:
        lo = f"({lo} - {facts.below * facts.below_excess!r})"
    return at_least(share(lo), repr(lo_clip)), at_most(share(hi), repr(hi_clip))


def var_interval(
    s2: Primitive,
    s1_plain: str,
    s1_width: float,
    center: float,
    n: Primitive,
    alpha: float,
    facts: ColumnFacts,
    *,
    sample: bool,
    share: Share = _same,
) -> Interval:
    """VAR = (Q - S^2 / n) / (n - 1) with Q the sum of squared deviations from `center` and
    S = sum - center x count, each noisy: interval arithmetic over the three at alpha/3."""
    a, b = facts.bounds
    w2, wn = _w(s2, alpha / 3), _w(n, alpha / 3)
    w1 = s1_width + abs(center) * wn
    s1c = share(f"({s1_plain} - {center!r} * {n.id})")
    s_lo, s_hi = share(f"({s1c} - {w1!r})"), share(f"({s1c} + {w1!r})")
    max_sq = f"GREATEST({s_lo} * {s_lo}, {s_hi} * {s_hi})"
    min_sq = f"CASE WHEN {s_lo} <= 0 AND {s_hi} >= 0 THEN 0 ELSE LEAST({s_lo} * {s_lo}, {s_hi} * {s_hi}) END"
    n_lo, n_hi = share(f"GREATEST({n.id} - {wn!r}, 1)"), share(f"GREATEST({n.id} + {wn!r}, 1)")
    num_lo = f"GREATEST(({s2.id} - {w2!r}) - {max_sq} / {n_lo}, 0)"
    num_hi = f"GREATEST(({s2.id} + {w2!r}) - {min_sq} / {n_hi}, 0)"
    shift = 1 if sample else 0
    lo = f"({num_lo} / GREATEST({n_hi} - {shift}, 1))"
    hi = f"({num_hi} / GREATEST({n_lo} - {shift}, 1))"
    top = ((b - a) / 2) ** 2
    if facts.rows_left_out > 0:
        extra = facts.rows_left_out * top
        lo, hi = f"({lo} - {extra!r})", f"({hi} + {extra!r})"
    if facts.above or facts.below:
        extra = facts.above * (facts.above_excess + (b - a)) ** 2 + facts.below * (facts.below_excess + (b - a)) ** 2
        hi = f"({hi} + {extra!r})"
        top = math.inf
    return at_least(share(lo), 0), (at_most(share(hi), repr(top)) if math.isfinite(top) else hi)


def quantile_interval(
    value: str, q: Primitive, n: Primitive, alpha: float, facts: ColumnFacts, *, share: Share = _same
) -> Interval:
    """The exponential mechanism's rank error t (records, at alpha/2), plus the rows bounding
    leaves out, as a share of the noisy count (at alpha/2), over the density near the value."""
    a, b = facts.bounds
    if facts.density is None:
        return _num(a), _num(b)
    t = privacy.quantile_rank_error(q.scale, q.candidates, alpha / 2, quantile=q.alpha)
    wn = _w(n, alpha / 2)
    rank_share = f"({t!r} / GREATEST({n.id} - {wn!r}, 1) + {facts.rows_left_out!r})"
    density = "CASE " + " ".join(f"WHEN {value} <= {edge!r} THEN {f!r}" for edge, f in facts.density[:-1])
    density += f" ELSE {facts.density[-1][1]!r} END"
    delta = share(f"({rank_share} / GREATEST({density}, 1e-300) + {q.step / 2!r})")
    lo_clip = a if not facts.below else -math.inf
    hi_clip = b if not facts.above else math.inf
    lo = f"({value} - {delta})"
    hi = f"({value} + {delta})"
    lo = at_least(share(lo), repr(lo_clip)) if math.isfinite(lo_clip) else f"({lo} - {facts.below_excess!r})"
    hi = at_most(share(hi), repr(hi_clip)) if math.isfinite(hi_clip) else f"({hi} + {facts.above_excess!r})"
    return lo, hi


def combine(node: exp.Expression, parts: dict[int, Interval], point: dict[int, str]) -> Interval:
    """Interval arithmetic over the user's expression, given the intervals of its aggregates
    (by node id) and the SQL of constants and keys (points)."""
    if id(node) in parts:
        return parts[id(node)]
    if id(node) in point:
        return point[id(node)], point[id(node)]
    if isinstance(node, exp.Paren):
        return combine(node.this, parts, point)
    if isinstance(node, exp.Literal) and not node.is_string:
        return node.this, node.this
    if isinstance(node, exp.Neg):
        lo, hi = combine(node.this, parts, point)
        return _op("0", "-", hi), _op("0", "-", lo)
    if isinstance(node, exp.Add | exp.Sub):
        a, b = combine(node.this, parts, point), combine(node.expression, parts, point)
        if isinstance(node, exp.Add):
            return _op(a[0], "+", b[0]), _op(a[1], "+", b[1])
        return _op(a[0], "-", b[1]), _op(a[1], "-", b[0])
    if isinstance(node, exp.Mul):
        a, b = combine(node.this, parts, point), combine(node.expression, parts, point)
        corners = [_op(x, "*", y) for x in a for y in b]
        return _least(*corners), _greatest(*corners)
    if isinstance(node, exp.Div | exp.IntDiv):
        a, b = combine(node.this, parts, point), combine(node.expression, parts, point)
        if b[0] is None or b[1] is None:
            return None, None
        corners = [_op(f"CAST({x} AS DOUBLE)", "/", y) if x is not None else None for x in a for y in b]
        safe = f"({b[0]} > 0 OR {b[1]} < 0)"
        lo, hi = _least(*corners), _greatest(*corners)
        if isinstance(node, exp.IntDiv):
            lo, hi = (f"FLOOR({lo})" if lo else None), (f"FLOOR({hi})" if hi else None)
        return (f"CASE WHEN {safe} THEN {lo} END" if lo else None), (f"CASE WHEN {safe} THEN {hi} END" if hi else None)
    if isinstance(node, exp.Ln | exp.Log):
        return _logarithm(node, parts, point)
    if isinstance(node, exp.Sign):
        lo, hi = combine(node.this, parts, point)
        return (f"SIGN({lo})" if lo else "-1"), (f"SIGN({hi})" if hi else "1")
    if isinstance(node, exp.Round | exp.Floor | exp.Ceil | exp.Sqrt | exp.Exp | exp.Cast | exp.TryCast):
        lo, hi = combine(node.this, parts, point)

        def again(end: str | None) -> str | None:
            if end is None:
                return None
            copy = node.copy()
            copy.set("this", exp.Paren(this=exp.maybe_parse(end, dialect="duckdb")))
            return copy.sql(dialect="duckdb")

        if isinstance(node, exp.Sqrt):
            return again(_greatest(lo, "0") if lo else None), again(hi)
        return again(lo), again(hi)
    if isinstance(node, exp.Abs):
        lo, hi = combine(node.this, parts, point)
        if lo is None or hi is None:
            return None, None
        return (
            f"CASE WHEN {lo} >= 0 THEN {lo} WHEN {hi} <= 0 THEN -({hi}) ELSE 0 END",
            f"GREATEST(ABS({lo}), ABS({hi}))",
        )
    if isinstance(node, exp.Least | exp.Greatest):
        ends = [combine(v, parts, point) for v in [node.this, *node.expressions]]
        pick = _least if isinstance(node, exp.Least) else _greatest
        return pick(*(e[0] for e in ends)), pick(*(e[1] for e in ends))
    if isinstance(node, exp.Case | exp.If | exp.Coalesce):
        return _hull([combine(v, parts, point) for v in _outcomes(node)])
    if isinstance(node, exp.Nullif):
        return combine(node.this, parts, point)  # the value or NULL
    if isinstance(node, exp.Mod):
        return _remainder(combine(node.this, parts, point), node.expression)
    if isinstance(node, exp.Pow):
        if isinstance(node.this, exp.Literal) and not node.this.is_string:
            return _exponential(float(node.this.this), node.this.this, combine(node.expression, parts, point))
        return _power(combine(node.this, parts, point), node.expression)
    return None, None


def _outcomes(node: exp.Case | exp.If | exp.Coalesce) -> list[exp.Expression]:
    """The values a CASE, IF or COALESCE may take (NULL left out: a NULL cell needs no interval)."""
    if isinstance(node, exp.Coalesce):
        values = [node.this, *node.expressions]
    elif isinstance(node, exp.If):
        values = [node.args.get("true"), node.args.get("false")]
    else:
        values = [branch.args.get("true") for branch in node.args.get("ifs") or []] + [node.args.get("default")]
    return [v for v in values if v is not None and not isinstance(v, exp.Null)]


def _hull(ends: list[Interval]) -> Interval:
    """The smallest interval holding every outcome's interval. Which outcome the exact answer takes
    depends on exact values (a condition on COUNT(*) may go the other way than its noisy value),
    so all of them count; an end that is NULL when the query runs (unbounded) keeps the hull's
    end NULL, where DuckDB's LEAST and GREATEST would skip it."""

    def strict(pick: str, parts: list[str | None]) -> str | None:
        if not parts or any(p is None for p in parts):
            return None
        if len(parts) == 1:
            return parts[0]
        nulls = " OR ".join(f"({p}) IS NULL" for p in parts)
        return f"CASE WHEN {nulls} THEN NULL ELSE {pick}({', '.join(parts)}) END"

    return strict("LEAST", [e[0] for e in ends]), strict("GREATEST", [e[1] for e in ends])


def _remainder(dividend: Interval, divisor: exp.Expression) -> Interval:
    """x % m for a constant m: |x % m| < |m|, with the sign of x (DuckDB's fmod)."""
    if not isinstance(divisor, exp.Literal) or divisor.is_string or float(divisor.this) == 0:
        return None, None
    m = abs(float(divisor.this))
    if not math.isfinite(m):
        return None, None
    lo, hi = dividend
    low = f"CASE WHEN {lo} >= 0 THEN 0 ELSE {-m!r} END" if lo else repr(-m)
    high = f"CASE WHEN {hi} <= 0 THEN 0 ELSE {m!r} END" if hi else repr(m)
    return low, high


def _logarithm(node: exp.Ln | exp.Log, parts: dict[int, Interval], point: dict[int, str]) -> Interval:
    """LN(x), LOG(x) (base 10 in DuckDB), LOG(b, x) with a constant base b > 1: increasing in x,
    and unbounded below where x's interval reaches 0 (DuckDB gives -inf at 0 and NaN below)."""
    argument = "expression" if node.args.get("expression") is not None else "this"
    if argument == "expression":
        base = node.this
        if not isinstance(base, exp.Literal) or base.is_string or not float(base.this) > 1:
            return None, None
    lo, hi = combine(node.args[argument], parts, point)

    def at(end: str) -> str:
        copy = node.copy()
        copy.set(argument, exp.Paren(this=exp.maybe_parse(end, dialect="duckdb")))
        return copy.sql(dialect="duckdb")

    return (f"CASE WHEN {lo} > 0 THEN {at(lo)} END" if lo else None), (at(hi) if hi else None)


def _exponential(base: float, text: str, exponent: Interval) -> Interval:
    """POWER(b, x) for a constant b > 0: increasing in x for b > 1, decreasing for b < 1, never
    below 0."""
    lo, hi = exponent
    if not math.isfinite(base) or base <= 0:
        return None, None
    if base == 1:
        return "1", "1"
    if base < 1:
        lo, hi = hi, lo
    return (f"POWER({text}, {lo})" if lo else "0"), (f"POWER({text}, {hi})" if hi else None)


def _power(base: Interval, exponent: exp.Expression) -> Interval:
    """POWER(x, p) for a constant p >= 0: monotone in x for odd integers and (on x >= 0, where
    it is defined) for fractions; even integers are smallest at 0. A negative or computed
    exponent has no interval here (1 / x^k is unbounded near 0)."""
    if not isinstance(exponent, exp.Literal) or exponent.is_string:
        return None, None
    p = float(exponent.this)
    lo, hi = base
    if not math.isfinite(p) or p > 2**53:
        return None, None
    if p == 0:
        return "1", "1"
    if not p.is_integer():
        return (f"POWER({_greatest(lo, '0')}, {p!r})" if lo else None), (f"POWER({hi}, {p!r})" if hi else None)
    n = int(p)
    if n % 2:
        return (f"POWER({lo}, {n})" if lo else None), (f"POWER({hi}, {n})" if hi else None)
    if lo is None or hi is None:
        return "0", None
    low = f"CASE WHEN {lo} >= 0 THEN POWER({lo}, {n}) WHEN {hi} <= 0 THEN POWER({hi}, {n}) ELSE 0 END"
    return low, f"GREATEST(POWER({lo}, {n}), POWER({hi}, {n}))"


def noisy_quantities(node: exp.Expression) -> int:
    """How many noisy statistics an output combines (its union bound's k), counting each
    distinct aggregate once."""
    seen: list[exp.Expression] = []
    total = 0
    for child in node.walk():
        if is_aggregate(child) and not any(child == s for s in seen):
            seen.append(child)
            total += _weight(child)
    return max(total, 1)


def _weight(node: exp.Expression) -> int:
    if isinstance(node, exp.Count | exp.Sum):
        return 1
    if isinstance(node, exp.Avg | exp.Median | exp.PercentileCont | exp.Quantile | exp.Min | exp.Max):
        return 2
    from sandbox.compiler import products

    if isinstance(node, products.PAIRED):
        return products.weight(node)
    return 3
