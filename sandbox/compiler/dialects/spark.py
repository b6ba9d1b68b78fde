"""The compiler's bounded statements for Spark SQL (ANSI mode, UTC session), with DuckDB's meaning.

The statements the compiler generates for DuckDB (our own text, never the user's) are parsed into
sqlglot trees, typed against the datasets' schemas (sqlglot's qualify and annotate_types), and
rebuilt node by node for Spark. Nothing is transpiled blindly: every node type has a rule here or
the query is refused, and sqlglot generates with `ErrorLevel.RAISE`, so no construct is dropped.

Where the engines differ, the rule renders DuckDB's meaning (each measured on both engines;
tests/backends/test_spark_dialect.py runs the cases):

- `TRY(x)` around the operations the compiler guards (integer overflow, division by zero): Spark's
  `try_add` / `try_subtract` / `try_multiply` / `try_mod`, or a CASE that is NULL exactly where
  DuckDB fails (`//`, ABS, negation, ROUND to tens of an integer);
- `/` and `%` on DOUBLE by zero: IEEE infinity / NaN as in DuckDB (ANSI Spark raises);
- CAST of a DOUBLE to an integer: half to even (`rint`), as DuckDB (Spark truncates);
- FLOOR / CEIL of a DOUBLE stay DOUBLE (Spark returns BIGINT, and fails past 2**63), signed zeros kept;
- SIGN of NaN is 0;
- date parts and LENGTH are BIGINT (Spark: INT, which would overflow in arithmetic), day of week
  counts from Sunday = 0, strftime is rebuilt from date parts (Spark has no strftime);
- SUBSTRING from position 0 (DuckDB counts position 0 as before the first character);
- TRIM removes Unicode space separators (DuckDB), LIKE has no escape character unless written;
- window ORDER BY puts NULLs last (DuckDB's default; Spark's ascending default is first).

Refused on Spark-backed datasets (the message says what to write instead): text converted to a
number, DATE or TIMESTAMP (the engines accept different spellings, e.g. '1e5', '0x1F', '2024'),
DOUBLE converted to text (different spellings of the same number), ROUND of a DOUBLE to decimals
(the engines round 2.675 differently), UPPER / LOWER / ILIKE (different Unicode case mappings,
e.g. 'ß'), EXP / LN / LOG / POWER of a column (Java's math library and the C library differ in the
last bit: EXP(1) is 2.718281828459045 in DuckDB and 2.7182818284590455 in Spark), TRY_CAST written
without sqlglot's `safe` flag is never produced (sqlglot would write it as a failing CAST), and any
construct without a rule.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from sandbox.errors import SQLRejected

if TYPE_CHECKING:
    from sandbox.catalog import Catalog, Dataset
    from sandbox.compiler.plan import Plan

__all__ = [
    "SparkStatements",
    "Unsupported",
    "check_spark",
    "dataset_schema",
    "dataset_version",
    "render_spark",
    "view_name",
]

RULE = "spark_dialect"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_SQL_CHARS = 400_000  # guarded CASEs repeat their operands; refuse what would grow past this
# DuckDB's TRIM() removes the Unicode space separators (category Zs), not tabs or newlines.
SPACE_SEPARATORS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_DOUBLE = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}
_INTEGER = {
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
}
_TEXT = {exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.CHAR}
_TEMPORAL = {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ}


class Unsupported(Exception):
    """A construct whose DuckDB meaning Spark cannot reproduce."""

    def __init__(self, construct: str, reason: str, fix: str) -> None:
        super().__init__(construct)
        self.construct, self.reason, self.fix = construct, reason, fix


@dataclass(frozen=True)
class SparkStatements:
    """The plan's exact-aggregate statements as Spark SQL (None: the plan needs none), and the
    temporary views they read: view name -> location of a dataset's engine artefact. The backend
    creates each view once per session (spark_backend.py), so Spark lists the file and reads its
    schema once, not at every statement (some 150 ms of a small query on Spark 4)."""

    aggregate: str | None
    histograms: dict[str, str]
    views: dict[str, str]


def view_name(dataset: str, location: str, version: str) -> str:
    """The temporary view of one registration of `dataset`: a dataset registered again (a new
    artefact at the same location) is a new view, never one whose file listing Spark has kept."""
    digest = hashlib.sha256(f"{location}\0{version}".encode()).hexdigest()[:16]
    return f"sandbox_{dataset}_{digest}"


def dataset_version(dataset: Dataset) -> str:
    """What identifies one registration of a dataset (its artefact changes only with these)."""
    manifest = dataset.manifest
    return f"{manifest.get('version')}:{manifest.get('fingerprint')}:{manifest.get('registered_at')}"


def dataset_schema(dataset: Dataset) -> dict[str, str]:
    """Column -> type of a dataset's engine artefact: the policy's columns, the rank and the
    quantized columns registration adds."""
    from sandbox.artefact import QUANTIZED_PREFIX, RANK_COLUMN

    columns = {name: column.type for name, column in dataset.policy.columns.items()}
    if not dataset.policy.public:
        columns[RANK_COLUMN] = "INTEGER"
    for name in dataset.manifest.get("quantized", {}):
        columns[QUANTIZED_PREFIX + name] = "INTEGER"
    return columns


def check_spark(plan: Plan, catalog: Catalog) -> None:
    """Refuse, at compile time, a plan over Spark-backed datasets that Spark cannot run with
    DuckDB's meaning (SQLRejected, rule `spark_dialect`). The planner calls this for plans whose
    datasets are Spark-backed; it reads no data."""
    schemas = {name: dataset_schema(catalog.get(name)) for name in plan.attach}
    render_spark(plan, schemas, {name: f"/{name}" for name in plan.attach})


def render_spark(
    plan: Plan,
    schemas: Mapping[str, Mapping[str, str]],
    tables: Mapping[str, str],
    versions: Mapping[str, str] | None = None,
) -> SparkStatements:
    """The plan's aggregate and histogram statements for Spark; `tables` maps each dataset to
    the location of its engine artefact, `versions` to its registration (`dataset_version`), and
    the statements read each through its temporary view (`view_name`). Raises SQLRejected."""
    versions = versions or {}
    views = {name: view_name(name, location, versions.get(name, "")) for name, location in tables.items()}
    try:
        aggregate = _render(plan.aggregate_sql, schemas, views) if plan.needs_aggregate else None
        histograms = {pid: _render(sql, schemas, views) for pid, sql in plan.histogram_sql.items()}
    except Unsupported as refusal:
        raise SQLRejected(
            refusal.construct,
            f"{refusal.reason}, and this dataset runs on Spark",
            refusal.fix,
            rule=RULE,
        ) from None
    return SparkStatements(aggregate, histograms, {views[name]: location for name, location in tables.items()})


# -- one statement -----------------------------------------------------------------------------


def _render(sql: str, schemas: Mapping[str, Mapping[str, str]], tables: Mapping[str, str]) -> str:
    schema = {name: {"main": {"data": dict(columns)}} for name, columns in schemas.items()}
    tree = sqlglot.parse_one(sql, read="duckdb")
    tree = qualify(
        tree, schema=schema, dialect="duckdb", quote_identifiers=True, expand_stars=True, validate_qualify_columns=True
    )
    tree = annotate_types(tree, schema=schema, dialect="duckdb")
    spark = _Spark(tables).convert(tree)
    try:
        text = spark.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as err:  # a construct sqlglot cannot write for Spark
        raise Unsupported("This query", f"its SQL has no Spark equivalent ({type(err).__name__})", _FIX) from None
    if len(text) > MAX_SQL_CHARS:
        raise Unsupported(
            "This query",
            "rendered for Spark with DuckDB's semantics it becomes too long (guarded operations repeat their operands)",
            "Nest fewer integer divisions, ABS or arithmetic that can overflow.",
        )
    return text


_FIX = "Rewrite the expression within the subset Spark-backed datasets support (see the README's 'Backends')."


def _type(node: exp.Expression) -> exp.DataType.Type | None:
    kind = node.type
    return kind.this if isinstance(kind, exp.DataType) else None


def _is_double(node: exp.Expression) -> bool:
    return _type(node) in _DOUBLE


def _label(node: exp.Expression, limit: int = 50) -> str:
    text = node.sql("duckdb")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _double(text: str) -> exp.Expression:
    return exp.cast(exp.Literal.string(text), "DOUBLE")


def _bigint(value: int) -> exp.Expression:
    return exp.cast(exp.Literal.number(value), "BIGINT")


def _func(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _case(*branches: tuple[exp.Expression, exp.Expression], default: exp.Expression | None = None) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=c, true=v) for c, v in branches], default=default)


def _p(node: exp.Expression) -> exp.Expression:
    return (
        node
        if isinstance(node, exp.Column | exp.Literal | exp.Paren | exp.Cast | exp.Anonymous)
        else exp.Paren(this=node)
    )


def _is_nan(node: exp.Expression) -> exp.Expression:
    return _func("isnan", node)


class _Spark:
    """Rebuilds a typed DuckDB tree for Spark, node by node (rules below; no rule: refused)."""

    def __init__(self, tables: Mapping[str, str]) -> None:
        self.tables = tables

    def convert(self, node: exp.Expression) -> exp.Expression:
        rule = _RULES.get(type(node))
        if rule is not None:
            return rule(self, node)
        if type(node) in _PLAIN:
            return self.rebuild(node)
        raise Unsupported(f"The construct {_label(node)}", "the sandbox has no Spark rendering for it", _FIX)

    def rebuild(self, node: exp.Expression) -> exp.Expression:
        """The same node over converted children."""
        args: dict[str, Any] = {}
        for key, value in node.args.items():
            if isinstance(value, exp.Expression):
                args[key] = self.convert(value)
            elif isinstance(value, list):
                args[key] = [self.convert(v) if isinstance(v, exp.Expression) else v for v in value]
            else:
                args[key] = value
        return type(node)(**args)

    def c(self, node: exp.Expression) -> exp.Expression:
        return _p(self.convert(node))


Rule = Callable[[_Spark, Any], exp.Expression]
_RULES: dict[type[exp.Expression], Rule] = {}


def _rule(*types: type[exp.Expression]) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        for t in types:
            _RULES[t] = function
        return function

    return register


# Nodes whose meaning is the same in both engines (given the rules for their children).
_PLAIN: frozenset[type[exp.Expression]] = frozenset(
    {
        exp.Select,
        exp.From,
        exp.Where,
        exp.Group,
        exp.Join,
        exp.Subquery,
        exp.Alias,
        exp.TableAlias,
        exp.Column,
        exp.Identifier,
        exp.Star,
        exp.Null,
        exp.Boolean,
        exp.DataType,
        exp.DataTypeParam,
        exp.Var,
        exp.Paren,
        exp.Distinct,
        exp.Count,
        exp.Sum,
        exp.Min,
        exp.Max,
        exp.Avg,  # per-unit pre-aggregations only (the bounded aggregates themselves are integer sums)
        exp.Window,
        exp.RowNumber,
        exp.Order,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.In,
        exp.Between,
        exp.Is,
        exp.And,
        exp.Or,
        exp.Not,
        exp.Case,
        exp.If,
        exp.Coalesce,
        exp.Nullif,
        exp.Least,
        exp.Greatest,
        exp.Sqrt,
        exp.StartsWith,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Neg,
        exp.Abs,
    }
)


@_rule(exp.Table)
def _table(s: _Spark, node: exp.Table) -> exp.Expression:
    dataset = node.catalog
    if dataset not in s.tables or node.db != "main" or node.name != "data":
        raise Unsupported(f"The table {_label(node)}", "it is not a registered dataset's engine artefact", _FIX)
    return exp.Table(
        this=exp.Identifier(this=s.tables[dataset], quoted=True),
        alias=node.args.get("alias").copy() if node.args.get("alias") else None,
    )


@_rule(exp.Literal)
def _literal(s: _Spark, node: exp.Literal) -> exp.Expression:
    """A number written with more than 38 digits is a DOUBLE to DuckDB and an error to Spark
    (its DECIMAL stops at 38 digits): say DOUBLE."""
    if not node.is_string and "e" not in node.this.lower() and sum(c.isdigit() for c in node.this) > 38:
        return _double(node.this)
    return node.copy()


@_rule(exp.DenseRank)
def _dense_rank(s: _Spark, node: exp.DenseRank) -> exp.Expression:
    return exp.DenseRank()


@_rule(exp.Ordered)
def _ordered(s: _Spark, node: exp.Ordered) -> exp.Expression:
    """DuckDB sorts NULLs last in both directions; say so, Spark's ascending default is first."""
    return exp.Ordered(this=s.convert(node.this), desc=bool(node.args.get("desc")), nulls_first=False)


# -- TRY: NULL exactly where DuckDB's operation fails ------------------------------------------


@_rule(exp.Try)
def _try(s: _Spark, node: exp.Try) -> exp.Expression:
    inner = node.this
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Add | exp.Sub | exp.Mul) and not _is_double(inner):
        name = {exp.Add: "try_add", exp.Sub: "try_subtract", exp.Mul: "try_multiply"}[type(inner)]
        return _func(name, s.convert(inner.this), s.convert(inner.expression))
    if isinstance(inner, exp.Neg) and not _is_double(inner):
        return _func("try_subtract", _bigint(0), s.convert(inner.this))
    if isinstance(inner, exp.Abs) and not _is_double(inner):
        x = s.c(inner.this)
        return _case((exp.EQ(this=x, expression=_bigint(INT64_MIN)), exp.Null()), default=exp.Abs(this=x.copy()))
    if isinstance(inner, exp.IntDiv):
        a, b = s.c(inner.this), s.c(inner.expression)
        fails = exp.Or(
            this=exp.EQ(this=b, expression=_bigint(0)),
            expression=exp.Paren(
                this=exp.And(
                    this=exp.EQ(this=a, expression=_bigint(INT64_MIN)),
                    expression=exp.EQ(this=b.copy(), expression=_bigint(-1)),
                )
            ),
        )
        return _case((fails, exp.Null()), default=exp.IntDiv(this=a.copy(), expression=b.copy()))
    if isinstance(inner, exp.Mod) and not _is_double(inner):
        return _func("try_mod", s.convert(inner.this), s.convert(inner.expression))
    if isinstance(inner, exp.Round) and not _is_double(inner.this):
        return _round_integer(s, inner)
    if isinstance(inner, exp.TimestampTrunc | exp.DateTrunc):
        return s.convert(inner)  # fails in DuckDB only at the ends of DATE's range, outside Spark's data
    raise Unsupported(f"The guarded operation {_label(inner)}", "the sandbox has no Spark rendering for it", _FIX)


def _round_integer(s: _Spark, node: exp.Round) -> exp.Expression:
    """ROUND(x, -n) of a BIGINT: half away from zero to a multiple of 10**n, NULL where the
    result leaves 64 bits (DuckDB's overflow) and 0 where 10**n is past 64 bits and |x| < 10**n / 2."""
    decimals = node.args.get("decimals")
    n = -int(decimals.this) if isinstance(decimals, exp.Literal) else None
    if isinstance(decimals, exp.Neg) and isinstance(decimals.this, exp.Literal):
        n = int(decimals.this.this)
    if n is None or n <= 0:
        return exp.Round(this=s.convert(node.this), decimals=decimals.copy() if decimals else None)
    m = 10**n
    # x >= 0 rounds to ((x + m/2) // m) * m, which fits while x <= upper; x < 0 to the mirror
    # image, which fits down to -2**63, so while x >= lower (for 10**n past 2**63 both are open)
    upper = min((INT64_MAX // m + 1) * m - m // 2 - 1, INT64_MAX)
    lower = max(m // 2 - (2**63 // m + 1) * m + 1, INT64_MIN)
    x = s.c(node.this)
    inside = exp.Between(this=x, low=_bigint(lower), high=_bigint(upper))
    value: exp.Expression = exp.Round(this=x.copy(), decimals=exp.Literal.number(-n)) if n <= 18 else _bigint(0)
    return _case((inside, value), default=exp.Null())


# -- arithmetic on DOUBLE: IEEE, as DuckDB -------------------------------------------------------


def _nonzero_constant(node: exp.Expression) -> bool:
    inner = node.this if isinstance(node, exp.Cast) else node
    if isinstance(inner, exp.Literal) and not inner.is_string:
        try:
            return float(inner.this) != 0.0
        except ValueError:
            return False
    return False


@_rule(exp.Div)
def _div(s: _Spark, node: exp.Div) -> exp.Expression:
    a, b = s.c(node.this), s.c(node.expression)
    if _nonzero_constant(node.expression):
        return exp.Div(this=a, expression=b)
    positive_zero = exp.EQ(this=exp.cast(b.copy(), "STRING"), expression=exp.Literal.string("0.0"))
    by_zero = _case(
        (exp.Or(this=_is_nan(a.copy()), expression=exp.EQ(this=a.copy(), expression=_double("0"))), _double("NaN")),
        (
            exp.EQ(
                this=exp.Paren(this=exp.GT(this=a.copy(), expression=_double("0"))),
                expression=exp.Paren(this=positive_zero),
            ),
            _double("Infinity"),
        ),
        default=_double("-Infinity"),
    )
    return _case(
        _null_dividend(a),
        (exp.EQ(this=b.copy(), expression=_double("0")), by_zero),
        default=exp.Div(this=a.copy(), expression=b.copy()),
    )


@_rule(exp.Mod)
def _mod(s: _Spark, node: exp.Mod) -> exp.Expression:
    a, b = s.c(node.this), s.c(node.expression)
    if not _is_double(node) or _nonzero_constant(node.expression):
        return exp.Mod(this=a, expression=b)
    return _case(
        _null_dividend(a),
        (exp.EQ(this=b, expression=_double("0")), _double("NaN")),
        default=exp.Mod(this=a.copy(), expression=b.copy()),
    )


def _null_dividend(a: exp.Expression) -> tuple[exp.Expression, exp.Expression]:
    """The first branch of a guarded DOUBLE division or remainder: a NULL dividend gives NULL, as
    in DuckDB, before the by-zero branch (Spark gave -Infinity for NULL / 0.0 and NaN for NULL % 0.0)."""
    return exp.Is(this=a.copy(), expression=exp.Null()), exp.cast(exp.Null(), "DOUBLE")


@_rule(exp.IntDiv)
def _intdiv(s: _Spark, node: exp.IntDiv) -> exp.Expression:
    return exp.IntDiv(this=s.c(node.this), expression=s.c(node.expression))  # unguarded: divisor a constant != 0, -1


_EXACT = "4503599627370496.0"  # 2**52: every DOUBLE at least this large is a whole number


def _whole(s: _Spark, node: exp.Expression, name: str) -> exp.Expression:
    """FLOOR / CEIL / ROUND of a DOUBLE as a DOUBLE, signed zeros and NaN kept."""
    x = s.c(node.this)
    if not _is_double(node.this):
        return type(node)(this=x)
    keep = exp.Or(
        this=exp.Or(this=_is_nan(x), expression=exp.GTE(this=exp.Abs(this=x.copy()), expression=_double(_EXACT))),
        expression=exp.EQ(this=x.copy(), expression=_double("0")),
    )
    negative_zero_above = {"floor": None, "ceil": "-1", "round": "-0.5"}[name]
    branches = [(keep, x.copy())]
    if negative_zero_above is not None:
        near = exp.And(
            this=exp.LT(this=x.copy(), expression=_double("0")),
            expression=exp.GT(this=x.copy(), expression=_double(negative_zero_above)),
        )
        branches.append((near, _double("-0.0")))
    return _case(*branches, default=exp.cast(_func(name, x.copy()), "DOUBLE"))


@_rule(exp.Floor)
def _floor(s: _Spark, node: exp.Floor) -> exp.Expression:
    return _whole(s, node, "floor")


@_rule(exp.Ceil)
def _ceil(s: _Spark, node: exp.Ceil) -> exp.Expression:
    return _whole(s, node, "ceil")


@_rule(exp.Round)
def _round(s: _Spark, node: exp.Round) -> exp.Expression:
    decimals = node.args.get("decimals")
    scale = decimals.this if isinstance(decimals, exp.Literal) else None
    if not _is_double(node.this):
        return exp.Round(this=s.convert(node.this), decimals=decimals.copy() if decimals else None)
    if decimals is not None and scale not in ("0",):
        raise Unsupported(
            f"ROUND to decimals of a DOUBLE ({_label(node)})",
            "DuckDB and Spark round some values differently (ROUND(2.675, 2) is 2.67 in one and 2.68 in the other)",
            "Round to whole units of a scale instead, e.g. ROUND(x * 100) / 100.",
        )
    return _whole(s, node, "round")


@_rule(exp.Sign)
def _sign(s: _Spark, node: exp.Sign) -> exp.Expression:
    x = s.c(node.this)
    branches = [] if not _is_double(node.this) else [(_is_nan(x), exp.Literal.number(0))]
    branches += [
        (exp.GT(this=x.copy(), expression=exp.Literal.number(0)), exp.Literal.number(1)),
        (exp.LT(this=x.copy(), expression=exp.Literal.number(0)), exp.Literal.number(-1)),
        (exp.EQ(this=x.copy(), expression=exp.Literal.number(0)), exp.Literal.number(0)),
    ]
    return _case(*branches)


def _transcendental(s: _Spark, node: exp.Expression) -> exp.Expression:
    raise Unsupported(
        f"{_label(node)}",
        "Spark computes EXP, LN, LOG and POWER with Java's math library, whose results differ from DuckDB's "
        "(the C library's) in the last bit for some values, so a filter or group key could differ",
        "Use arithmetic, SQRT, or compare with a constant (EXP(3) written as a constant is computed once).",
    )


for _node_type in (exp.Exp, exp.Ln, exp.Log, exp.Pow):
    _RULES[_node_type] = _transcendental


# -- conversions -------------------------------------------------------------------------------


@_rule(exp.Cast, exp.TryCast)
def _cast(s: _Spark, node: exp.Cast) -> exp.Expression:
    to = node.to
    target = to.this
    source = _type(node.this)
    inner = node.this
    if isinstance(inner, exp.Literal | exp.Null) or source == target:
        return exp.Cast(this=s.convert(inner), to=_spark_type(to))
    if source in _TEXT and target not in _TEXT and target != exp.DataType.Type.BOOLEAN:
        raise Unsupported(
            f"The conversion {_label(node)} of text",
            "DuckDB and Spark read numbers and dates in text differently ('1e5', '0x1F', '1_000' and '2024' are "
            "numbers or dates in one and NULL in the other)",
            "Compare the text with text constants, or group by the text itself.",
        )
    if source in _DOUBLE and target in _TEXT:
        raise Unsupported(
            f"The conversion {_label(node)} of a DOUBLE to text",
            "DuckDB and Spark spell the same number differently (1e+20 and 1.0E20)",
            "Group or compare by the number itself, or by FLOOR(x) converted to BIGINT first.",
        )
    if source in _DOUBLE and target in _INTEGER:
        # DuckDB rounds half to even; Spark truncates. Out of range or NaN: NULL in both.
        value = _func("rint", s.convert(inner))
        converted = _try_cast(value, to)
        if target == exp.DataType.Type.BIGINT:  # Spark clamps 2**63 itself to the largest BIGINT
            return _case(
                (exp.GTE(this=value.copy(), expression=_double("9.223372036854775807E18")), exp.Null()),
                default=converted,
            )
        return converted
    return _try_cast(s.convert(inner), to)


def _try_cast(value: exp.Expression, to: exp.DataType) -> exp.Expression:
    """TRY_CAST for Spark. `safe=True` matters: without it sqlglot writes Spark's TryCast as a
    plain CAST, which fails under ANSI mode where DuckDB's TRY_CAST gives NULL."""
    return exp.TryCast(this=value, to=_spark_type(to), safe=True)


def _spark_type(to: exp.DataType) -> exp.DataType:
    if to.this in _TEXT:
        return exp.DataType.build("STRING")
    return to.copy()


# -- dates ---------------------------------------------------------------------------------------


def _bigint_of(expression: exp.Expression) -> exp.Expression:
    return exp.cast(expression, "BIGINT")


_PARTS: dict[str, Callable[[exp.Expression], exp.Expression]] = {
    "YEAR": lambda d: _func("year", d),
    "QUARTER": lambda d: _func("quarter", d),
    "MONTH": lambda d: _func("month", d),
    "WEEK": lambda d: _func("weekofyear", d),
    "DAY": lambda d: _func("dayofmonth", d),
    "DAYOFWEEK": lambda d: exp.Sub(this=_func("dayofweek", d), expression=exp.Literal.number(1)),
    "ISODOW": lambda d: exp.Add(this=_func("weekday", d), expression=exp.Literal.number(1)),
    "DAYOFYEAR": lambda d: _func("dayofyear", d),
    "ISOYEAR": lambda d: exp.Extract(this=exp.Var(this="YEAROFWEEK"), expression=d),
    "HOUR": lambda d: _func("hour", d),
    "MINUTE": lambda d: _func("minute", d),
    "SECOND": lambda d: _func("second", d),
}
_PART_NODES = {
    exp.Year: "YEAR",
    exp.Quarter: "QUARTER",
    exp.Month: "MONTH",
    exp.Week: "WEEK",
    exp.WeekOfYear: "WEEK",
    exp.Day: "DAY",
    exp.DayOfMonth: "DAY",
    exp.DayOfWeek: "DAYOFWEEK",
    exp.DayOfWeekIso: "ISODOW",
    exp.DayOfYear: "DAYOFYEAR",
}


def _part(s: _Spark, part: str, value: exp.Expression) -> exp.Expression:
    build = _PARTS.get(part.upper())
    if build is None:
        raise Unsupported(f"The date part {part}", "the sandbox has no Spark rendering for it", _FIX)
    return _bigint_of(build(s.c(value)))


@_rule(exp.Extract)
def _extract(s: _Spark, node: exp.Extract) -> exp.Expression:
    return _part(s, node.this.name, node.expression)


@_rule(*_PART_NODES)
def _part_function(s: _Spark, node: exp.Expression) -> exp.Expression:
    return _part(s, _PART_NODES[type(node)], node.this)


@_rule(exp.TimestampTrunc, exp.DateTrunc)
def _trunc(s: _Spark, node: exp.Expression) -> exp.Expression:
    unit = node.args["unit"].name.upper()
    return _func("date_trunc", exp.Literal.string(unit), s.convert(node.this))


def _pad(value: exp.Expression, width: int, fill: str = "0") -> exp.Expression:
    return _func("lpad", exp.cast(value, "STRING"), exp.Literal.number(width), exp.Literal.string(fill))


def _strftime_piece(spec: str, d: exp.Expression) -> exp.Expression:
    part = lambda name: _PARTS[name](d.copy())  # noqa: E731
    dow = lambda: exp.Paren(this=part("DAYOFWEEK"))  # noqa: E731
    doy = lambda: part("DAYOFYEAR")  # noqa: E731
    pieces: dict[str, Callable[[], exp.Expression]] = {
        "Y": lambda: _pad(part("YEAR"), 4),
        "m": lambda: _pad(part("MONTH"), 2),
        "d": lambda: _pad(part("DAY"), 2),
        "H": lambda: _pad(part("HOUR"), 2),
        "M": lambda: _pad(part("MINUTE"), 2),
        "S": lambda: _pad(part("SECOND"), 2),
        "j": lambda: _pad(doy(), 3),
        "y": lambda: _pad(exp.Mod(this=part("YEAR"), expression=exp.Literal.number(100)), 2),
        "w": lambda: exp.cast(dow(), "STRING"),
        "u": lambda: exp.cast(part("ISODOW"), "STRING"),
        "V": lambda: _pad(part("WEEK"), 2),
        "G": lambda: _pad(part("ISOYEAR"), 4),
        "U": lambda: _pad(
            exp.IntDiv(
                this=exp.Paren(
                    this=exp.Sub(this=exp.Add(this=doy(), expression=exp.Literal.number(6)), expression=dow())
                ),
                expression=exp.Literal.number(7),
            ),
            2,
        ),
        "W": lambda: _pad(
            exp.IntDiv(
                this=exp.Paren(
                    this=exp.Sub(
                        this=exp.Add(this=doy(), expression=exp.Literal.number(6)),
                        expression=exp.Paren(
                            this=exp.Mod(
                                this=exp.Paren(this=exp.Add(this=dow(), expression=exp.Literal.number(6))),
                                expression=exp.Literal.number(7),
                            )
                        ),
                    )
                ),
                expression=exp.Literal.number(7),
            ),
            2,
        ),
        "I": lambda: _pad(
            exp.Add(
                this=exp.Paren(
                    this=exp.Mod(
                        this=exp.Paren(this=exp.Add(this=part("HOUR"), expression=exp.Literal.number(11))),
                        expression=exp.Literal.number(12),
                    )
                ),
                expression=exp.Literal.number(1),
            ),
            2,
        ),
        "p": lambda: _case(  # NULL for a NULL time, as every other piece is
            (exp.Is(this=part("HOUR"), expression=exp.Null()), exp.Null()),
            (exp.LT(this=part("HOUR"), expression=exp.Literal.number(12)), exp.Literal.string("AM")),
            default=exp.Literal.string("PM"),
        ),
        "b": lambda: _func("date_format", d.copy(), exp.Literal.string("MMM")),
        "B": lambda: _func("date_format", d.copy(), exp.Literal.string("MMMM")),
        "a": lambda: _func("date_format", d.copy(), exp.Literal.string("EEE")),
        "A": lambda: _func("date_format", d.copy(), exp.Literal.string("EEEE")),
        "%": lambda: exp.Literal.string("%"),
    }
    if spec not in pieces:
        raise Unsupported(f"The strftime specifier %{spec}", "the sandbox has no Spark rendering for it", _FIX)
    return pieces[spec]()


@_rule(exp.TimeToStr)
def _strftime(s: _Spark, node: exp.TimeToStr) -> exp.Expression:
    fmt = node.args.get("format")
    if not isinstance(fmt, exp.Literal) or not fmt.is_string:
        raise Unsupported(f"The strftime {_label(node)}", "its format must be a constant", "Write e.g. '%Y-%m'.")
    d = s.c(node.this)
    pieces: list[exp.Expression] = []
    text, i = fmt.this, 0
    literal, reads_date = "", False
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text):
            if literal:
                pieces.append(exp.Literal.string(literal))
                literal = ""
            pieces.append(_strftime_piece(text[i + 1], d))
            reads_date = reads_date or text[i + 1] != "%"
            i += 2
        else:
            literal += text[i]
            i += 1
    if literal:
        pieces.append(exp.Literal.string(literal))
    if not pieces:
        pieces.append(exp.Literal.string(""))
    text_of = _func("concat", *pieces) if len(pieces) > 1 else exp.cast(pieces[0], "STRING")
    if reads_date:
        return text_of  # concat is NULL when the date is: a piece reads it
    # '%%', 'text': a constant, yet NULL for a NULL date, as in DuckDB
    return _case((exp.Is(this=d.copy(), expression=exp.Null()), exp.Null()), default=text_of)


# -- text ------------------------------------------------------------------------------------------


@_rule(exp.Length)
def _length(s: _Spark, node: exp.Length) -> exp.Expression:
    return _bigint_of(_func("char_length", s.convert(node.this)))


@_rule(exp.Trim)
def _trim(s: _Spark, node: exp.Trim) -> exp.Expression:
    chars = s.convert(node.expression) if node.expression is not None else exp.Literal.string(SPACE_SEPARATORS)
    position = node.args.get("position") or "BOTH"
    return exp.Trim(this=s.convert(node.this), expression=chars, position=position)


@_rule(exp.Substring)
def _substring(s: _Spark, node: exp.Substring) -> exp.Expression:
    """DuckDB counts position 0 as just before the first character (SUBSTRING(s, 0, 3) is two
    characters); Spark reads 0 as 1. Start and length are constants (compile-time checked)."""
    start_node, length_node = node.args.get("start"), node.args.get("length")
    start = _integer_constant(start_node)
    length = _integer_constant(length_node) if length_node is not None else None
    if start is None or (length_node is not None and length is None):
        raise Unsupported(f"The SUBSTRING {_label(node)}", "its start and length must be constants", _FIX)
    if start == 0:
        start, length = 1, (max(length - 1, 0) if length is not None else None)
    args = [s.convert(node.this), exp.Literal.number(start)]
    if length is not None:
        args.append(exp.Literal.number(length))
    return _func("substring", *args)


def _integer_constant(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    if isinstance(node, exp.Paren):
        return _integer_constant(node.this)
    if isinstance(node, exp.Neg):
        inner = _integer_constant(node.this)
        return -inner if inner is not None else None
    if isinstance(node, exp.Cast):
        return _integer_constant(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


@_rule(exp.Like)
def _like(s: _Spark, node: exp.Like) -> exp.Expression:
    """DuckDB's LIKE has no escape character; Spark's default is the backslash. Name one the
    (constant) pattern does not contain, so every character of the pattern means itself."""
    pattern = node.expression
    if not isinstance(pattern, exp.Literal) or not pattern.is_string:
        raise Unsupported(f"The LIKE {_label(node)}", "its pattern must be a constant", "Write e.g. LIKE 'A%'.")
    escape = next((c for c in "!#^~|@&$" if c not in pattern.this), None)
    if escape is None:
        raise Unsupported(f"The LIKE pattern {_label(pattern)}", "it uses every escape character we could name", _FIX)
    like = exp.Like(this=s.c(node.this), expression=exp.Literal.string(pattern.this))
    return exp.Escape(this=like, expression=exp.Literal.string(escape))


def _case_mapping(s: _Spark, node: exp.Expression) -> exp.Expression:
    raise Unsupported(
        f"{_label(node)}",
        "DuckDB and Spark map Unicode case differently (UPPER('ß') is 'ẞ' in one and 'SS' in the other)",
        "Compare with the exact spelling of the public keys instead, e.g. district IN ('Siming', 'SIMING').",
    )


for _node_type in (exp.Upper, exp.Lower, exp.ILike):
    _RULES[_node_type] = _case_mapping


@functools.lru_cache(maxsize=1)
def rules() -> frozenset[type[exp.Expression]]:
    """Every node type the Spark rendering knows (for tests and documentation)."""
    return frozenset(_RULES) | _PLAIN
