"""The output SQL evaluated in Python, with DuckDB's meaning, for the output steps that use only
what this module knows; every other output step runs in DuckDB (noise.run_output).

Why: the output step runs on a handful of noisy rows, and DuckDB's fixed cost for one small
statement (register the table, bind, plan, run, fetch Arrow) was some 2.5 ms, most of the
engine's own cost per release (issue 17 asks for at most 3 ms). What the output SQL does to a row
is little: double arithmetic, CASE, GREATEST/LEAST, casts to DOUBLE, NULL tests, comparisons.
This is post-processing of released values, so a difference from DuckDB could never leak a
record; it would be a wrong number, and tests/engine/test_output_evaluator.py proves the two
equal (every accepted fixture query on real and edge-case noisy tables, and random expressions
over NaN, infinities, -0.0 and NULL, against DuckDB itself).

DuckDB's meaning, as the tests pin it: types as DuckDB gives them (a number with a point is a
DECIMAL of as many digits as are written, a BIGINT beside it makes DECIMAL arithmetic, `/` is
always DOUBLE division); doubles are IEEE (x/0 is ±inf, 0/0 and SQRT(-1) are NaN, overflow is
inf); NaN equals NaN and is greater than every other double; a DECIMAL becomes the nearest double;
GREATEST and LEAST skip NULLs; AND/OR/NOT are three-valued; ORDER BY puts NULLs last either way
and VARCHAR in byte order. A BIGINT or DECIMAL out of range (an error in DuckDB) or equal sort
keys (an order DuckDB chooses) hand the step to DuckDB at run time. Text and date expressions,
DECIMAL multiplication, ORDER BY an ordinal and every function not in _HANDLERS are not
evaluated: such an output step is DuckDB's. Other key types (dates, ...) pass through as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cmp_to_key, lru_cache
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

__all__ = ["Fallback", "Program", "program", "repeated"]

Column = list[Any]
Env = dict[str, Column]
Compiled = tuple[str, Callable[[Env, int], Column]]  # (type tag, column-wise evaluation)

# Type tags: "d" DOUBLE, "i" BIGINT (an input column), "x:w:s" DECIMAL(w, s), "b" BOOLEAN, "n" the
# NULL literal, "il" an integer literal, "s" a VARCHAR input column (passed through, or a sort
# key), "o" any other input column (passed through only), "u" one that DuckDB returns changed


class Unsupported(Exception):
    """A construct this module does not evaluate: the output step runs in DuckDB."""


class Fallback(Unsupported):
    """Found while evaluating (a BIGINT or DECIMAL out of range, equal sort keys, whose order
    is DuckDB's to choose): DuckDB runs the step."""


class Program:
    """One output SQL compiled for one input schema: `levels` of named columns added to the
    noisy table (`SELECT *, ... FROM ...`), then the final items, WHERE, ORDER BY and LIMIT."""

    def __init__(
        self,
        inputs: list[str],
        levels: list[list[tuple[str, Compiled]]],
        items: list[tuple[str, Compiled | str]],
        where: Compiled | None,
        order: list[tuple[Callable[[Env, int], Column], bool]],
        window: tuple[int, int | None],
    ) -> None:
        self.inputs, self.levels, self.items, self.where = inputs, levels, items, where
        self.order, self.window = order, window

    def __call__(self, released: pa.Table) -> pa.Table:
        n = released.num_rows
        env: Env = {name: released.column(name).to_pylist() for name in self.inputs}
        for level in self.levels:
            env = {**env, **{name: fn(env, n) for name, (_, fn) in level}}
        outputs = {name: item if isinstance(item, str) else item[1](env, n) for name, item in self.items}
        for name, value in outputs.items():  # what WHERE and ORDER BY may name
            if name in env:
                continue
            if not isinstance(value, str):
                env[name] = value
            elif value in env:  # not an "o" column, which nothing may name (_with_outputs)
                env[name] = env[value]
        rows = self._rows(env, n)
        arrays = []
        for name, item in self.items:
            if isinstance(item, str):  # an input column passed through: its own Arrow type
                arrays.append(released.column(item).take(pa.array(rows, pa.int64())))
            else:
                values = outputs[name]
                arrays.append(pa.array([values[i] for i in rows], type=_ARROW[item[0]]))
        return pa.Table.from_arrays(arrays, names=[name for name, _ in self.items])

    def _rows(self, env: Env, n: int) -> list[int]:
        """The rows released, in their order: WHERE, then ORDER BY (NULLs last either way),
        then OFFSET and LIMIT."""
        rows = list(range(n))
        if self.where is not None:
            condition = self.where[1](env, n)
            rows = [i for i in rows if condition[i] is True]
        if self.order:
            keys = [(fn(env, n), descending) for fn, descending in self.order]

            def compare(i: int, j: int) -> int:
                for values, descending in keys:
                    a, b = values[i], values[j]
                    if a is None or b is None:
                        found = (a is None) - (b is None)  # NULLs last, ascending or not
                    else:
                        found = -_order(a, b) if descending else _order(a, b)
                    if found:
                        return found
                return 0

            rows.sort(key=cmp_to_key(compare))
            if any(compare(a, b) == 0 for a, b in zip(rows, rows[1:], strict=False)):
                raise Fallback  # equal keys: which comes first is DuckDB's choice
        offset, limit = self.window
        return rows[offset:] if limit is None else rows[offset : offset + limit]


_ARROW = {"d": pa.float64(), "i": pa.int64(), "b": pa.bool_()}


MAX_LENGTH = 6_000  # characters of output SQL; sqlglot's parse of longer SQL costs more than DuckDB saves
_SEEN: set[str] = set()
_SEEN_KEPT = 1024


def repeated(sql: str) -> bool:
    """Whether this worker released this output SQL before, and it is short enough to be worth
    compiling. A query's first release runs in DuckDB: sqlglot parses SQL of a few thousand
    characters more slowly than DuckDB parses and runs it (up to 4x at 9,000), while a plan
    released again (a notebook re-run, a dashboard) is where the Python step saves its milliseconds."""
    if len(sql) > MAX_LENGTH:
        return False
    if sql in _SEEN:
        return True
    if len(_SEEN) >= _SEEN_KEPT:
        _SEEN.clear()
    _SEEN.add(sql)
    return False


def program(sql: str, schema: pa.Schema) -> Program | None:
    """The compiled output step, or None where DuckDB must run it; kept per (SQL, schema)."""
    return _program(sql, tuple((f.name, _tag(f.type)) for f in schema))


@lru_cache(maxsize=128)
def _program(sql: str, inputs: tuple[tuple[str, str], ...]) -> Program | None:
    try:
        return _compile(sqlglot.parse_one(sql, read="duckdb"), dict(inputs))
    except (Unsupported, sqlglot.errors.SqlglotError, RecursionError):  # sqlglot's parser recurses
        return None  # some 20 frames a nesting level: 50 nested parentheses are too deep for it


def _tag(type_: pa.DataType) -> str:
    if pa.types.is_float64(type_):
        return "d"
    if pa.types.is_string(type_):
        return "s"
    if pa.types.is_int64(type_):
        return "i"
    if pa.types.is_boolean(type_):
        return "b"
    if any(test(type_) for test in _UNCHANGED) or (pa.types.is_timestamp(type_) and type_.tz is None):
        return "o"
    return "u"  # a zoned timestamp (its zone renamed), a duration, large_string, a dictionary, ...


# Arrow types DuckDB returns as they came in (tests/engine/test_output_evaluator.py, KEYS)
_UNCHANGED = (
    pa.types.is_null, pa.types.is_signed_integer, pa.types.is_float64, pa.types.is_date32,
    pa.types.is_decimal128, pa.types.is_time64, pa.types.is_binary,
)


def _compile(select: exp.Expression, inputs: dict[str, str]) -> Program:
    _only(select, exp.Select, _OUTER)
    if "u" in inputs.values():
        raise Unsupported("an input column DuckDB would not pass through unchanged")
    _distinct_names(inputs)
    levels: list[list[tuple[str, Compiled]]] = []
    types = _relation(_source(select), inputs, levels)
    items: list[tuple[str, Compiled | str]] = []
    for item in select.expressions:
        name, node = _named(item, types)
        column = _name(node, types) if isinstance(node, exp.Column) else None
        if column in inputs:  # (a level's names never repeat an input's: _relation)
            items.append((name, column))
        else:
            compiled = _expr(node, types)
            if compiled[0] not in _ARROW:
                raise Unsupported(f"a {compiled[0]} output")
            items.append((name, compiled))
    if len({name.lower() for name, _ in items}) != len(items):
        raise Unsupported("repeated output names")
    types = _with_outputs(types, items)
    where = select.args.get("where")
    condition = None
    if where is not None:
        condition = _expr(where.this, types)
        if condition[0] not in ("b", "n"):
            raise Unsupported("a WHERE that is not a condition")
    order = select.args.get("order")
    keys = [] if order is None else [_sort_key(o, types) for o in order.expressions]
    window = (_count(select, "offset") or 0, _count(select, "limit"))
    if window != (0, None) and not keys:
        raise Unsupported("LIMIT or OFFSET without ORDER BY")
    return Program([name for name, tag in inputs.items() if tag != "o"], levels, items, condition, keys, window)


_OUTER = frozenset({"expressions", "from", "from_", "where", "order", "limit", "offset"})
_LEVEL = frozenset({"expressions", "from", "from_"})


def _only(node: exp.Expression, kind: type, clauses: frozenset[str]) -> None:
    """`node` is a `kind` with nothing set but `clauses`: anything else (DISTINCT, a sample,
    * EXCLUDE, LIMIT 2%, a qualified name, ...) is not evaluated."""
    if not isinstance(node, kind) or any(v for k, v in node.args.items() if k not in clauses):
        raise Unsupported(f"{node.key} with {sorted(k for k, v in node.args.items() if v and k not in clauses)}")


def _distinct_names(types: dict[str, str]) -> None:
    """DuckDB matches names regardless of case and takes the first of two that match: names
    that differ only in case are not evaluated."""
    if len({name.lower() for name in types}) != len(types):
        raise Unsupported("names that differ only in case")


def _with_outputs(types: dict[str, str], items: list[tuple[str, Compiled | str]]) -> dict[str, str]:
    """The names WHERE and ORDER BY may use: the relation's columns and the outputs' names. A
    name of both (DuckDB's ORDER BY takes the output, its WHERE the column) is not evaluated."""
    scope = dict(types)
    columns = {name.lower(): name for name in types}
    for name, item in items:
        if item == name:  # a column passed through under its own name
            continue
        if name.lower() in columns:  # either may be meant: neither is evaluated
            scope[columns[name.lower()]] = "ambiguous"
            scope[name] = "ambiguous"
        elif isinstance(item, str):
            scope[name] = types[item]
        else:
            scope[name] = item[0]
    return scope


def _sort_key(ordered: exp.Expression, types: dict[str, str]) -> tuple[Callable[[Env, int], Column], bool]:
    """One ORDER BY key: a number, or a VARCHAR column (DuckDB's default collation compares
    bytes of UTF-8, which orders as Python compares code points)."""
    if not isinstance(ordered, exp.Ordered) or ordered.args.get("nulls_first"):
        raise Unsupported("an ORDER BY other than ASC or DESC")
    node = ordered.this
    if isinstance(node, exp.Column) and types.get(_name(node, types)) == "s":
        name = _name(node, types)
        return (lambda env, n: env[name]), bool(ordered.args.get("desc"))
    tag, fn = _expr(node, types)
    if _kind(tag) not in ("d", "i", "x", "b"):
        raise Unsupported(f"ORDER BY a {tag}")
    return fn, bool(ordered.args.get("desc"))


def _count(select: exp.Select, clause: str) -> int | None:
    found = select.args.get(clause)
    if found is None:
        return None
    _only(found, exp.Limit if clause == "limit" else exp.Offset, frozenset({"this", "expression"}))
    value = found.expression if found.expression is not None else found.this
    if not isinstance(value, exp.Literal) or not _INTEGER.fullmatch(value.this) or int(value.this) >= 2**63:
        raise Unsupported(f"{clause} of {value}")
    return int(value.this)


def _source(select: exp.Select) -> exp.Expression:
    source = select.args.get("from_") or select.args.get("from")
    if source is None:
        raise Unsupported("no FROM")
    _only(source, exp.From, frozenset({"this"}))
    relation = source.this
    _only(relation, exp.Table if isinstance(relation, exp.Table) else exp.Subquery, frozenset({"this", "alias"}))
    alias = relation.args.get("alias")
    if alias is not None:
        _only(alias, exp.TableAlias, frozenset({"this"}))
    return relation


def _relation(node: exp.Expression, inputs: dict[str, str], levels: list) -> dict[str, str]:
    """The column types of `released` or of `(SELECT *, ... FROM <relation>)`, levels appended."""
    if isinstance(node, exp.Table) and node.name == "released":
        return dict(inputs)
    if not isinstance(node, exp.Subquery):
        raise Unsupported(node.key)
    inner = node.this
    _only(inner, exp.Select, _LEVEL)
    types = _relation(_source(inner), inputs, levels)
    star, *added = inner.expressions
    _only(star, exp.Star, frozenset())  # no EXCLUDE, REPLACE, RENAME
    level = []
    for item in added:
        name, expression = _named(item, types)
        tag, fn = _expr(expression, types)
        if tag == "il":  # a column of INTEGER literals is an INTEGER column: not evaluated
            raise Unsupported("an INTEGER column")
        level.append((name, (tag, fn)))
    known = {name.lower() for name in types}
    for name, (tag, _) in level:
        if name.lower() in known:  # a column's name again, or another of the level's
            raise Unsupported(f"the name {name} twice")
        known.add(name.lower())
        types[name] = tag
    levels.append(level)
    return types


def _named(item: exp.Expression, types: dict[str, str]) -> tuple[str, exp.Expression]:
    """An item's name as DuckDB gives it: its alias, or the name of the column it names as the
    column is spelled (`SELECT K` of a column `k` is named `k`)."""
    if isinstance(item, exp.Alias):
        return item.alias, item.this
    if isinstance(item, exp.Column):
        return _name(item, types), item
    raise Unsupported("an unnamed output")


# -- expressions: each compiles to (type tag, env -> column) ------------------------------------


def _expr(node: exp.Expression, types: dict[str, str]) -> Compiled:
    handler = _HANDLERS.get(type(node))
    if handler is None:
        raise Unsupported(type(node).__name__)
    return handler(node, types)


def _column(node: exp.Column, types: dict[str, str]) -> Compiled:
    name = _name(node, types)
    if types[name] in ("o", "s", "ambiguous"):
        raise Unsupported(f"column {name}")
    return types[name], lambda env, n: env[name]


def _name(node: exp.Column, types: dict[str, str]) -> str:
    """The column a name means: DuckDB matches names regardless of case."""
    if node.table or node.args.get("db") or not isinstance(node.this, exp.Identifier):
        raise Unsupported("a qualified name")
    found = [name for name in types if name.lower() == node.name.lower()]
    if len(found) != 1:
        raise Unsupported(f"column {node.name}")
    return found[0]


_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"([0-9]*)\.([0-9]*)")
_EXPONENT = re.compile(r"[0-9.]+[eE][-+]?[0-9]+")


def _literal(node: exp.Literal, types: dict[str, str]) -> Compiled:
    """A number as DuckDB types it: INTEGER or BIGINT; DECIMAL(every digit written, the digits
    after the point) up to 38 digits; DOUBLE with an exponent."""
    text = node.this
    if node.is_string:
        raise Unsupported("text")
    if _INTEGER.fullmatch(text):
        value = int(text)
        if value >= 2**63:  # HUGEINT in DuckDB
            raise Unsupported("a wide integer literal")
        return "il", _constant(value)
    decimal = _DECIMAL.fullmatch(text)
    if decimal is not None and 0 < len(text) - 1 <= 38:
        whole, fraction = decimal.groups()
        return _decimal_tag(len(whole) + len(fraction), len(fraction)), _constant(int(whole + fraction or "0"))
    if _EXPONENT.fullmatch(text):
        return "d", _constant(float(text))
    raise Unsupported(f"literal {text}")


def _constant(value: Any) -> Callable[[Env, int], Column]:
    return lambda env, n: [value] * n


def _null(node: exp.Null, types: dict[str, str]) -> Compiled:
    return "n", _constant(None)


def _boolean(node: exp.Boolean, types: dict[str, str]) -> Compiled:
    return "b", _constant(bool(node.this))


def _paren(node: exp.Paren, types: dict[str, str]) -> Compiled:
    return _expr(node.this, types)


# -- numbers: DOUBLE, BIGINT and DECIMAL as DuckDB types and computes them ----------------------
# A DECIMAL(w, s) is tagged "x:w:s" and its values are the unscaled integers (value * 10^s).

MAX_WIDTH = 38


def _decimal_tag(width: int, scale: int) -> str:
    return f"x:{width}:{scale}"


def _kind(tag: str) -> str:
    """A tag with a DECIMAL's width and scale left out: "x"."""
    return "x" if tag.startswith("x:") else tag


def _decimal_of(tag: str, value_range: int = 0) -> tuple[int, int] | None:
    """(width, scale) of an operand in DECIMAL arithmetic: BIGINT is DECIMAL(19, 0), an
    INTEGER literal DECIMAL(10, 0); None for the NULL literal."""
    if _kind(tag) == "x":
        _, width, scale = tag.split(":")
        return int(width), int(scale)
    if tag == "i":
        return 19, 0
    if tag == "il":
        return (10, 0) if value_range < 2**31 else (19, 0)
    return None


def _to_double(tag: str, fn: Callable[[Env, int], Column]) -> Callable[[Env, int], Column]:
    """A numeric operand cast to DOUBLE as DuckDB casts it."""
    if tag in ("d", "n"):
        return fn
    if tag in ("i", "il"):
        return lambda env, n: [None if v is None else float(v) for v in fn(env, n)]
    if _kind(tag) == "x":
        _, scale = _decimal_of(tag)  # type: ignore[misc]
        return lambda env, n: [None if v is None else _decimal_to_double(v, scale) for v in fn(env, n)]
    raise Unsupported(f"a {tag} where a number belongs")


def _decimal_to_double(unscaled: int, scale: int) -> float:
    """DuckDB's DECIMAL -> DOUBLE gives the nearest double (tests/engine/test_output_evaluator.py
    pins it), as Python's division of two integers does."""
    return unscaled / 10**scale


def _rescaled(tag: str, fn: Callable[[Env, int], Column], width: int, scale: int) -> Callable[[Env, int], Column]:
    """An integer or DECIMAL operand as unscaled integers at `scale` (exact: scales only grow).
    DuckDB casts it to DECIMAL(width, scale) first, which fails where it does not fit (a width
    capped at 38 digits): then the step is DuckDB's (Fallback)."""
    found = _decimal_of(tag)
    factor = 10 ** (scale - (found[1] if found else 0))
    check = _exact(_decimal_tag(width, scale))
    return lambda env, n: [None if v is None else check(v * factor) for v in fn(env, n)]


def _numbers(operands: list[Compiled], widen: int) -> tuple[str, list[Callable[[Env, int], Column]]]:
    """The type DuckDB computes an operation in, and the operands converted to it: DOUBLE if an
    operand is DOUBLE; else DECIMAL if one is DECIMAL (scale the largest, width the largest
    integer part + scale + `widen`: 1 for + and -, 0 for GREATEST, LEAST, CASE, comparisons);
    else BIGINT if one is a BIGINT column."""
    kinds = {_kind(tag) for tag, _ in operands}
    if not kinds <= {"d", "i", "il", "n", "x"} or kinds <= {"il", "n"}:
        raise Unsupported(f"operands {sorted(kinds)}")
    if "d" in kinds:
        return "d", [_to_double(tag, fn) for tag, fn in operands]
    if "x" in kinds:
        shapes = [_decimal_of(tag, _literal_range(tag, fn)) for tag, fn in operands]
        scale = max(s for shape in shapes if shape for _, s in [shape])
        digits = max(w - s for shape in shapes if shape for w, s in [shape])
        width = digits + scale + widen
        if width > MAX_WIDTH:
            if widen == 0:  # DuckDB then rounds an operand to fewer decimals
                raise Unsupported("a DECIMAL wider than 38 digits")
            width = MAX_WIDTH  # + and -: DuckDB caps the width and fails on overflow
        return _decimal_tag(width, scale), [_rescaled(tag, fn, width, scale) for tag, fn in operands]
    return "i", [fn for _, fn in operands]


def _literal_range(tag: str, fn: Callable[[Env, int], Column]) -> int:
    """How large an integer literal is (INTEGER or BIGINT); 0 for other operands."""
    return abs(fn({}, 1)[0]) if tag == "il" else 0


_INT64 = range(-(2**63), 2**63)


def _exact(tag: str) -> Callable[[Any], Any]:
    """A check on a computed value: a BIGINT or DECIMAL out of range is an error in DuckDB, so
    the step is DuckDB's (Fallback); a DOUBLE is IEEE's."""
    if tag == "i":
        limits = _INT64
    elif _kind(tag) == "x":
        width = int(tag.split(":")[1])
        limits = range(-(10**width) + 1, 10**width)
    else:
        return lambda v: v

    def check(value: int) -> int:
        if value not in limits:
            raise Fallback
        return value

    return check


def _divide(a: float, b: float) -> float:
    if b != 0.0:
        return a / b
    if a != a or a == 0.0:  # 0/0 and NaN/0
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    exp.Add: lambda a, b: a + b,
    exp.Sub: lambda a, b: a - b,
    exp.Mul: lambda a, b: a * b,
    exp.Div: _divide,
}


def _arithmetic(node: exp.Binary, types: dict[str, str]) -> Compiled:
    op = _ARITHMETIC[type(node)]
    operands = [_expr(node.left, types), _expr(node.right, types)]
    tag, (left, right) = _numbers(operands, widen=1)
    if isinstance(node, exp.Div):  # `/` is DOUBLE division, of integers and DECIMALs too
        tag, (left, right) = "d", [_to_double(t, fn) for t, fn in operands]
    elif isinstance(node, exp.Mul) and _kind(tag) == "x":
        raise Unsupported("DECIMAL multiplication")
    exact = _exact(tag)

    def run(env: Env, n: int) -> Column:
        return [
            None if a is None or b is None else exact(op(a, b))
            for a, b in zip(left(env, n), right(env, n), strict=True)
        ]

    return tag, run


def _neg(node: exp.Neg, types: dict[str, str]) -> Compiled:
    tag, fn = _expr(node.this, types)
    if _kind(tag) not in ("d", "il", "i", "x"):
        raise Unsupported(f"minus on {tag}")
    exact = _exact(tag)
    return tag, lambda env, n: [None if v is None else exact(-v) for v in fn(env, n)]


def _abs(node: exp.Abs, types: dict[str, str]) -> Compiled:
    tag, fn = _expr(node.this, types)
    if _kind(tag) not in ("d", "i", "x"):
        raise Unsupported(f"ABS of {tag}")
    exact = _exact(tag)
    return tag, lambda env, n: [None if v is None else exact(abs(v)) for v in fn(env, n)]


def _sqrt(node: exp.Sqrt, types: dict[str, str]) -> Compiled:
    tag, fn = _expr(node.this, types)
    if _kind(tag) not in ("d", "i", "x"):
        raise Unsupported(f"SQRT of {tag}")
    double = _to_double(tag, fn)
    return "d", lambda env, n: [None if v is None else math.nan if v < 0 else math.sqrt(v) for v in double(env, n)]


def _cast(node: exp.Cast, types: dict[str, str]) -> Compiled:
    if not node.to.is_type(exp.DataType.Type.DOUBLE):
        raise Unsupported(f"a cast to {node.to.sql()}")
    return "d", _to_double(*_expr(node.this, types))


def _is(node: exp.Is, types: dict[str, str]) -> Compiled:
    if not isinstance(node.expression, exp.Null):
        raise Unsupported("IS other than IS NULL")
    _, fn = _expr(node.this, types)
    return "b", lambda env, n: [v is None for v in fn(env, n)]


def _order(a: float, b: float) -> int:
    """DuckDB's order of doubles: NaN is equal to NaN and above everything else."""
    a_nan, b_nan = a != a, b != b
    if a_nan or b_nan:
        return int(a_nan) - int(b_nan)
    return (a > b) - (a < b)


_COMPARISONS: dict[type, Callable[[int], bool]] = {
    exp.EQ: lambda c: c == 0,
    exp.NEQ: lambda c: c != 0,
    exp.GT: lambda c: c > 0,
    exp.GTE: lambda c: c >= 0,
    exp.LT: lambda c: c < 0,
    exp.LTE: lambda c: c <= 0,
}


def _comparison(node: exp.Binary, types: dict[str, str]) -> Compiled:
    test = _COMPARISONS[type(node)]
    _, (left, right) = _numbers([_expr(node.left, types), _expr(node.right, types)], widen=0)

    def run(env: Env, n: int) -> Column:
        return [
            None if a is None or b is None else test(_order(a, b))
            for a, b in zip(left(env, n), right(env, n), strict=True)
        ]

    return "b", run


def _condition(node: exp.Expression, types: dict[str, str]) -> Callable[[Env, int], Column]:
    tag, fn = _expr(node, types)
    if tag not in ("b", "n"):
        raise Unsupported(f"a {tag} as a condition")
    return fn


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _logic(node: exp.Binary, types: dict[str, str]) -> Compiled:
    op = _and if isinstance(node, exp.And) else _or
    left, right = _condition(node.left, types), _condition(node.right, types)
    return "b", lambda env, n: [op(a, b) for a, b in zip(left(env, n), right(env, n), strict=True)]


def _not(node: exp.Not, types: dict[str, str]) -> Compiled:
    fn = _condition(node.this, types)
    return "b", lambda env, n: [None if v is None else not v for v in fn(env, n)]


def _case(node: exp.Case, types: dict[str, str]) -> Compiled:
    if node.this is not None:  # CASE x WHEN ...
        raise Unsupported("a simple CASE")
    whens = [(_condition(i.this, types), _expr(i.args["true"], types)) for i in node.args["ifs"]]
    default = node.args.get("default")
    otherwise = _expr(default, types) if default is not None else ("n", _constant(None))
    return _branches(whens, otherwise)


def _branches(whens: list[tuple[Callable, Compiled]], otherwise: Compiled) -> Compiled:
    """CASE's value: the first branch whose condition is TRUE (not NULL), else the default; the
    type DuckDB gives it, DOUBLE or BOOLEAN (branches of other types are not evaluated)."""
    results = [c for _, c in whens] + [otherwise]
    tags = {tag for tag, _ in results}
    if tags <= {"b", "n"} and "b" in tags:
        tag, values = "b", [fn for _, fn in results]
    else:
        tag, values = _numbers(results, widen=0)
    conditions = [c for c, _ in whens]

    def run(env: Env, n: int) -> Column:
        tests = [c(env, n) for c in conditions]
        columns = [v(env, n) for v in values]
        out = []
        for row in range(n):
            chosen = len(tests)
            for i, test in enumerate(tests):
                if test[row] is True:
                    chosen = i
                    break
            out.append(columns[chosen][row])
        return out

    return tag, run


def _extreme(node: exp.Func, types: dict[str, str]) -> Compiled:
    """GREATEST / LEAST: NULLs skipped (NULL only if all are), the first of equal values kept."""
    sign = 1 if isinstance(node, exp.Greatest) else -1
    tag, fns = _numbers([_expr(a, types) for a in (node.this, *node.expressions)], widen=0)

    def run(env: Env, n: int) -> Column:
        columns = [fn(env, n) for fn in fns]
        out = []
        for row in range(n):
            best = None
            for column in columns:
                v = column[row]
                if v is not None and (best is None or sign * _order(v, best) > 0):
                    best = v
            out.append(best)
        return out

    return tag, run


_HANDLERS: dict[type, Callable[[Any, dict[str, str]], Compiled]] = {
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Null: _null,
    exp.Boolean: _boolean,
    exp.Paren: _paren,
    exp.Neg: _neg,
    exp.Abs: _abs,
    exp.Sqrt: _sqrt,
    exp.Cast: _cast,
    exp.TryCast: _cast,
    exp.Is: _is,
    exp.And: _logic,
    exp.Or: _logic,
    exp.Not: _not,
    exp.Case: _case,
    exp.Greatest: _extreme,
    exp.Least: _extreme,
    **dict.fromkeys(_ARITHMETIC, _arithmetic),
    **dict.fromkeys(_COMPARISONS, _comparison),
}
