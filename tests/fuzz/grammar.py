"""A grammar of queries over the catalog's schemas, as hypothesis strategies.

It generates what a determined licensed developer would try, mostly well-typed (so most queries
are accepted and run) and sometimes not (so the refusals are exercised too): columns of every
type and role, literals of every type (including text that looks like a number or a date, and
text that does not), the whole function allowlist with random constant arguments, nested
CASE/COALESCE/arithmetic, filters in WHERE and ON, joins of one domain, per-unit
pre-aggregations, public reference tables, GROUP BY expressions, HAVING, ORDER BY and LIMIT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from sandbox.catalog import Catalog
from sandbox.policy import Role

__all__ = ["Schema", "queries"]

NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "FLOAT"}
DATE_PARTS = ["year", "month", "day", "quarter", "week", "dow", "dayofweek", "doy", "isodow", "hour", "minute"]
BAD_DATE_PARTS = ["foo", "epoch", "millennium", "microseconds", "", "timezone"]
TRUNC_UNITS = ["year", "quarter", "month", "week", "day", "hour"]
FORMATS = ["%Y", "%Y-%m", "%m/%d", "%j", "%a %b", "%H:%M", "%U-%w", "%G-%V", "%%Y", "%p", "day"]
BAD_FORMATS = ["%Q", "", "%z", "%Z", "%", "%Y-%", "%-d"]
EXTREMES = ["9223372036854775807", "-9223372036854775808", "4294967296", "3037000500", "2147483647", "0", "-1"]
TEXT_LITERALS = [
    "",
    "a",
    "Siming",
    "Huli",
    "F",
    "M",
    "1",
    "12",
    "007",
    "3.5",
    "1e5",
    "NaN",
    "inf",
    "2024-01-31",
    "2024-13-45",
    "notadate",
    "true",
    "ß",
    "O''Brien",
    "%",
    "a%",
    "_b",
    "\\",
    "x\\%",
    "厦门",
    " ",
]


@dataclass(frozen=True)
class Col:
    ref: str  # as written in the query (qualified or not)
    type: str  # policy type
    role: Role
    keys: tuple | None = None
    bounds: tuple[float, float] | None = None
    unit: bool = False

    @property
    def kind(self) -> str:
        if self.type in NUMERIC:
            return "num"
        return {"VARCHAR": "text", "DATE": "date", "TIMESTAMP": "ts", "BOOLEAN": "bool"}[self.type]


@dataclass
class Schema:
    """The datasets of a catalog as the grammar needs them."""

    datasets: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog) -> Schema:
        schema = cls()
        for ds in catalog.list():
            policy = ds.policy
            schema.datasets[ds.name] = {
                "public": policy.public,
                "domain": policy.domain,
                "unit": None if policy.public else policy.unit,
                "max_rows": policy.privacy_unit.max_rows if policy.privacy_unit else 0,
                "columns": {n: c for n, c in policy.columns.items() if c.role is not Role.hidden},
            }
        return schema

    def private(self) -> list[str]:
        return sorted(n for n, d in self.datasets.items() if not d["public"])

    def columns(self, name: str, alias: str | None) -> list[Col]:
        d = self.datasets[name]
        prefix = f"{alias}." if alias else ""
        return [Col(prefix + n, c.type, c.role, c.keys, c.bounds, n == d["unit"]) for n, c in d["columns"].items()]


# -- expressions ---------------------------------------------------------------------------
def _quote(text: str) -> str:
    return "'" + text + "'"


@st.composite
def literal(draw, kind: str) -> str:
    if kind == "num":
        return draw(
            st.one_of(
                st.integers(-5, 120).map(str),
                st.sampled_from(
                    [
                        "0",
                        "1",
                        "-1",
                        "2147483647",
                        "9223372036854775807",
                        "-9223372036854775808",
                        "99999999999999999999",
                        "0.5",
                        "1e3",
                        "1e308",
                        "2.5e-7",
                        "100000",
                    ]
                ),
                st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: repr(round(f, 3))),
            )
        )
    if kind == "text":
        return _quote(draw(st.sampled_from(TEXT_LITERALS)))
    if kind == "date":
        return draw(
            st.sampled_from(
                [
                    "'2024-01-31'",
                    "DATE '2020-02-29'",
                    "'2023-06-01'",
                    "'1999-12-31'",
                    "'0001-01-01'",
                    "'9999-12-31'",
                    "'2024-13-01'",
                    "'notadate'",
                    "'2024-1-1'",
                ]
            )
        )
    if kind == "ts":
        return draw(st.sampled_from(["TIMESTAMP '2024-01-31 08:00:00'", "'2024-01-31 08:00:00'", "'2024-01-31'"]))
    if kind == "bool":
        return draw(st.sampled_from(["TRUE", "FALSE"]))
    return "NULL"


def rarely(n: int) -> st.SearchStrategy[bool]:
    """True about once in n draws (hypothesis favours small integers, so not integers(0, n) == 0)."""
    return st.sampled_from([False] * (n - 1) + [True])


@st.composite
def column(draw, cols: list[Col], kind: str) -> str | None:
    matching = [c for c in cols if c.kind == kind and not c.unit]
    if draw(rarely(40)):  # now and then: an identifier, or any column at all
        matching = cols
    if not matching:
        return None
    return draw(st.sampled_from(matching)).ref


@st.composite
def expr(draw, cols: list[Col], kind: str, depth: int = 2) -> str:
    """An expression meant to have `kind` (num, text, date, ts, bool); sometimes another."""
    if draw(rarely(30)):  # a deliberate type confusion
        kind = draw(st.sampled_from(["num", "text", "date", "bool"]))
    leaf = depth <= 0 or draw(rarely(4))
    if leaf:
        pick = draw(st.sampled_from(["column", "column", "column", "literal", "literal", "null"]))
        if pick == "column":
            found = draw(column(cols, kind))
            if found:
                return found
        if pick == "null" and draw(rarely(4)):
            return "NULL"
        return draw(literal(kind))
    sub = lambda k: expr(cols, k, depth - 1)  # noqa: E731
    if kind == "bool":
        return draw(boolean(cols, depth))
    if kind == "num":
        choice = draw(st.sampled_from([0, 1, 2, 3, 0, 1, 2, 3, *range(4, 17)]))
        if choice <= 3:
            op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%", "*", "+"]))
            right = draw(st.one_of(sub("num"), st.sampled_from(EXTREMES)))
            return f"({draw(sub('num'))} {op} {right})"
        if choice == 4:
            f = draw(st.sampled_from(["ABS", "SIGN", "FLOOR", "CEIL", "SQRT", "LN", "EXP", "LOG", "LOG10", "LOG2"]))
            return f"{f}({draw(sub('num'))})"
        if choice == 5:
            scale = draw(st.one_of(st.integers(-4, 4), st.sampled_from([-40, 31, 400])))
            return f"ROUND({draw(sub('num'))}, {scale})"
        if choice == 6:
            return f"POWER({draw(sub('num'))}, {draw(sub('num'))})"
        if choice == 7:
            return f"{draw(st.sampled_from(['LEAST', 'GREATEST', 'COALESCE']))}({draw(sub('num'))}, {draw(sub('num'))})"
        if choice == 8:
            return f"NULLIF({draw(sub('num'))}, {draw(sub('num'))})"
        if choice == 9:
            return f"CASE WHEN {draw(sub('bool'))} THEN {draw(sub('num'))} ELSE {draw(sub('num'))} END"
        if choice == 10:
            target = draw(st.sampled_from(["INTEGER", "BIGINT", "DOUBLE", "SMALLINT"]))
            cast = draw(st.sampled_from(["CAST", "TRY_CAST"]))
            return f"{cast}({draw(sub(draw(st.sampled_from(['text', 'num', 'bool']))))} AS {target})"
        if choice == 11:
            return f"LENGTH({draw(sub('text'))})"
        if choice == 12:
            f = draw(st.sampled_from(["YEAR", "MONTH", "DAY", "QUARTER", "DAYOFWEEK", "DAYOFYEAR", "WEEK", "ISODOW"]))
            return f"{f}({draw(sub('date'))})"
        if choice == 13:
            part = draw(st.sampled_from(DATE_PARTS + BAD_DATE_PARTS[:2]))
            if draw(st.booleans()):
                return f"date_part('{part}', {draw(sub('date'))})"
            return f"EXTRACT({part or 'year'} FROM {draw(sub('date'))})"
        if choice == 14:
            return f"-{draw(sub('num'))}"
        if choice == 15:
            return f"IF({draw(sub('bool'))}, {draw(sub('num'))}, {draw(sub('num'))})"
        return f"({draw(sub('num'))})"
    if kind == "text":
        choice = draw(st.sampled_from(range(8)))
        if choice == 0:
            return f"{draw(st.sampled_from(['LOWER', 'UPPER', 'TRIM']))}({draw(sub('text'))})"
        if choice == 1:
            start = draw(st.one_of(st.integers(-3, 4), st.just(9223372036854775807)))
            if draw(st.booleans()):
                return f"SUBSTRING({draw(sub('text'))}, {start}, {draw(st.integers(-1, 5))})"
            return f"SUBSTRING({draw(sub('text'))}, {start})"
        if choice == 2:
            return f"CAST({draw(sub(draw(st.sampled_from(['num', 'date', 'bool']))))} AS VARCHAR)"
        if choice == 3:
            fmt = draw(st.sampled_from(FORMATS + BAD_FORMATS[:3]))
            return f"strftime({draw(sub('date'))}, '{fmt}')"
        if choice == 4:
            return f"COALESCE({draw(sub('text'))}, {draw(literal('text'))})"
        if choice == 5:
            return f"CASE WHEN {draw(sub('bool'))} THEN {draw(sub('text'))} ELSE {draw(literal('text'))} END"
        if choice == 6:
            return f"NULLIF({draw(sub('text'))}, {draw(literal('text'))})"
        return draw(literal("text"))
    if kind == "date":
        choice = draw(st.sampled_from(range(4)))
        if choice == 0:
            return f"date_trunc('{draw(st.sampled_from(TRUNC_UNITS + ['foo']))}', {draw(sub('date'))})"
        if choice == 1:
            return f"TRY_CAST({draw(sub('text'))} AS DATE)"
        if choice == 2:
            return f"CAST({draw(sub('text'))} AS DATE)"
        return draw(literal("date"))
    if kind == "ts":
        return f"CAST({draw(sub('date'))} AS TIMESTAMP)"
    return draw(literal(kind))


@st.composite
def boolean(draw, cols: list[Col], depth: int) -> str:
    sub = lambda k: expr(cols, k, depth - 1)  # noqa: E731
    choice = draw(st.sampled_from(range(12)))
    kind = draw(st.sampled_from(["num", "num", "text", "date", "num"]))
    if choice <= 3:
        op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
        return f"{draw(sub(kind))} {op} {draw(sub(kind))}"
    if choice == 4:
        items = ", ".join(draw(st.lists(literal(kind), min_size=1, max_size=4)))
        negate = draw(st.sampled_from(["", "NOT "]))
        return f"{draw(sub(kind))} {negate}IN ({items})"
    if choice == 5:
        return f"{draw(sub(kind))} BETWEEN {draw(literal(kind))} AND {draw(literal(kind))}"
    if choice == 6:
        op = draw(st.sampled_from(["LIKE", "ILIKE", "NOT LIKE"]))
        return f"{draw(sub('text'))} {op} {draw(literal('text'))}"
    if choice == 7:
        return f"{draw(sub(kind))} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    if choice == 8:
        return f"NOT ({draw(boolean(cols, depth - 1))})"
    if choice == 9:
        joiner = draw(st.sampled_from(["AND", "OR"]))
        return f"({draw(boolean(cols, depth - 1))}) {joiner} ({draw(boolean(cols, depth - 1))})"
    if choice == 10:
        return f"starts_with({draw(sub('text'))}, {draw(literal('text'))})"
    return f"{draw(sub('num'))} > {draw(literal('num'))}"


# -- queries -------------------------------------------------------------------------------
@st.composite
def relations(draw, schema: Schema) -> tuple[str, list[Col], dict]:
    """FROM and JOINs: (sql, visible columns, facts about the shape)."""
    private = schema.private()
    shape = draw(st.sampled_from(["single"] * 6 + ["join", "join", "preagg", "preagg_join", "public"]))
    by_domain: dict[str, list[str]] = {}
    for name in private:
        by_domain.setdefault(schema.datasets[name]["domain"], []).append(name)
    fusable = [names for names in by_domain.values() if len(names) >= 2]
    if shape in ("join", "preagg_join") and fusable:
        group = draw(st.sampled_from(fusable))
        names = draw(st.lists(st.sampled_from(group), min_size=2, max_size=3, unique=True))
        first = "preagg" if shape == "preagg_join" else "table"
        sql, cols, unit = _relation(draw, schema, names[0], "a", first)
        for i, name in enumerate(names[1:], start=1):
            alias = "abc"[i]
            unit_i = schema.datasets[name]["unit"]
            more = _relation_cols(schema, name, alias)
            on = f"{unit} = {alias}.{unit_i}"
            if draw(rarely(4)):
                on += f" AND {draw(boolean(cols + more, 1))}"
            side = draw(st.sampled_from(["JOIN", "JOIN", "LEFT JOIN"]))
            sql += f" {side} {name} {alias} ON {on}"
            cols = cols + more
        return sql, cols, {"fused": True}
    if shape in ("preagg", "preagg_join"):
        name = draw(st.sampled_from(private))
        sql, cols, _ = _relation(draw, schema, name, "s", "preagg")
        return sql, cols, {"fused": True}
    if shape == "public":
        candidates = [n for n in private if "district" in schema.datasets[n]["columns"]]
        publics = [n for n, d in schema.datasets.items() if d["public"] and "district" in d["columns"]]
        if candidates and publics:
            name, public = draw(st.sampled_from(candidates)), draw(st.sampled_from(publics))
            cols = _relation_cols(schema, name, "r") + _relation_cols(schema, public, "d")
            return f"{name} r JOIN {public} d ON r.district = d.district", cols, {"fused": True}
    name = draw(st.sampled_from(private))
    alias = draw(st.sampled_from([None, None, "t"]))
    sql = name + (f" {alias}" if alias else "")
    return sql, schema.columns(name, alias), {"fused": False}


def _relation_cols(schema: Schema, name: str, alias: str) -> list[Col]:
    return schema.columns(name, alias)


def _relation(draw, schema: Schema, name: str, alias: str, kind: str) -> tuple[str, list[Col], str]:
    unit = schema.datasets[name]["unit"]
    if kind == "table":
        return f"{name} {alias}", schema.columns(name, alias), f"{alias}.{unit}"
    inner = schema.columns(name, None)
    measures = [c for c in inner if c.kind == "num" and c.bounds and not c.unit]
    items = [unit]
    cols = [Col(f"{alias}.{unit}", "BIGINT", Role.identifier, unit=True)]
    for i in range(draw(st.integers(1, 3))):
        function = draw(st.sampled_from(["SUM", "AVG", "MIN", "MAX", "COUNT"]))
        if function == "COUNT" or not measures:
            target = draw(st.sampled_from(["*", *(c.ref for c in inner if not c.unit)]))
            items.append(f"COUNT({target}) AS v{i}")
            cols.append(Col(f"{alias}.v{i}", "BIGINT", Role.dimension, bounds=(0, schema.datasets[name]["max_rows"])))
            continue
        measure = draw(st.sampled_from(measures))
        value = f"{function}({measure.ref})"
        if draw(rarely(4)):
            lo, hi = sorted(draw(st.lists(st.integers(-100, 100000), min_size=2, max_size=2)))
            value = f"LEAST(GREATEST({value}, {lo}), {hi + 1})"
        items.append(f"{value} AS v{i}")
        cols.append(Col(f"{alias}.v{i}", "DOUBLE", Role.measure, bounds=(0.0, 1.0)))
    where = f" WHERE {draw(boolean(inner, 2))}" if draw(st.booleans()) else ""
    sql = f"(SELECT {', '.join(items)} FROM {name}{where} GROUP BY {unit}) AS {alias}"
    return sql, cols, f"{alias}.{unit}"


@st.composite
def group_key(draw, cols: list[Col]) -> str | None:
    dims = [c for c in cols if c.role is Role.dimension]
    public = [c for c in cols if c.ref.startswith("d.") and c.role is not Role.identifier]
    if public and draw(rarely(3)):  # any column of the public table (its measures too), plain
        return draw(st.sampled_from(public)).ref
    if not dims or draw(rarely(30)):
        dims = cols  # sometimes a measure or identifier: refused
    if not dims:
        return None
    col = draw(st.sampled_from(dims))
    choice = draw(st.sampled_from(range(7)))
    if col.kind == "num":
        return [
            col.ref,
            f"FLOOR({col.ref} / 10) * 10",
            f"{col.ref} // 5",
            f"CASE WHEN {col.ref} < 30 THEN 'low' ELSE 'high' END",
            f"ROUND({col.ref}, -1)",
            f"{col.ref} % 3",
            col.ref,
        ][choice]
    if col.kind == "text":
        return [
            col.ref,
            f"LOWER({col.ref})",
            f"SUBSTRING({col.ref}, 1, 2)",
            f"COALESCE({col.ref}, 'none')",
            f"LENGTH({col.ref})",
            f"{col.ref} LIKE 'S%'",
            col.ref,
        ][choice]
    if col.kind == "date":
        return [
            col.ref,
            f"YEAR({col.ref})",
            f"date_trunc('month', {col.ref})",
            f"strftime({col.ref}, '%Y-%m')",
            f"date_part('quarter', {col.ref})",
            f"EXTRACT(dow FROM {col.ref})",
            col.ref,
        ][choice]
    return col.ref


@st.composite
def aggregate(draw, cols: list[Col]) -> str:
    measures = [c for c in cols if c.kind == "num" and c.bounds and not c.unit]
    units = [c for c in cols if c.unit]
    choice = draw(st.sampled_from(range(16)))
    if draw(rarely(3)):  # an aggregate over an expression, a FILTER, a dialect spelling
        return draw(expression_aggregate(cols, measures))
    if choice >= 12:  # COUNT(DISTINCT col), MIN/MAX, CORR/COVAR/REGR
        return draw(distinct_extreme_or_paired(cols, measures))
    if choice <= 2 or not measures:
        if choice == 1 and units:
            return f"COUNT(DISTINCT {draw(st.sampled_from(units)).ref})"
        if choice == 2:
            return f"COUNT({draw(st.sampled_from(cols)).ref})"
        return "COUNT(*)"
    m = draw(st.sampled_from(measures)).ref
    if choice == 3:
        return f"SUM({m})"
    if choice == 4:
        return f"AVG({m})"
    if choice == 5:
        return f"{draw(st.sampled_from(['VAR_SAMP', 'VAR_POP', 'STDDEV', 'STDDEV_POP']))}({m})"
    if choice == 6:
        return f"MEDIAN({m})"
    if choice == 7:
        return f"QUANTILE_CONT({m}, {draw(st.sampled_from(['0.1', '0.25', '0.9', '0.99']))})"
    if choice == 8:
        public = [c for c in cols if c.ref.startswith("d.") and c.kind == "num"]
        if public and draw(st.booleans()):  # a public column in output arithmetic (a key if grouped)
            return f"COUNT(*) * 1000.0 / {draw(st.sampled_from(public)).ref}"
        return f"SUM({m}) / (COUNT(*) + 1)"
    if choice == 9:
        return f"ROUND(AVG({m}), 1) * 2"
    if choice == 10:
        return f"SUM({m}) - SUM({m}) / 2"
    return "(COUNT(*) + 1) * 1.5"


@st.composite
def expression_aggregate(draw, cols: list[Col], measures: list[Col]) -> str:
    """Aggregates over row-level expressions (bounds derived from the policy's, or the analyst's
    clamp), FILTER clauses and VAR/STD: often bounded, sometimes not (a divisor that can be 0, a
    column without bounds), which the compiler must refuse or clamp."""
    function = draw(st.sampled_from(["SUM", "AVG", "VAR", "STD", "STDDEV_POP", "MEDIAN", "COUNT"]))
    m = draw(st.sampled_from(measures)).ref if measures else draw(literal("num"))
    shape = draw(st.sampled_from(range(8)))
    if shape == 0:
        value = f"CASE WHEN {draw(boolean(cols, 1))} THEN {draw(st.sampled_from(['1', '1.0', m]))} ELSE 0 END"
    elif shape == 1:
        value = f"CASE WHEN {draw(boolean(cols, 1))} THEN {m} END"
    elif shape == 2:
        value = f"{m} {draw(st.sampled_from(['*', '/', '+', '-']))} {draw(st.one_of(literal('num'), st.just(m)))}"
    elif shape == 3:
        value = f"COALESCE({m}, {draw(literal('num'))})"
    elif shape == 4:
        lo, hi = sorted(draw(st.lists(st.sampled_from(["-1", "0", "10", "1e3", "1e300"]), min_size=2, max_size=2)))
        value = f"LEAST(GREATEST({draw(expr(cols, 'num', 1))}, {lo}), {hi})"
    elif shape == 5:
        value = draw(expr(cols, "num", 2))  # anything: bounded or refused
    elif shape == 6:
        value = f"IF({draw(boolean(cols, 1))}, {m}, -{m})"
    else:
        value = m
    text = "*" if function == "COUNT" and draw(st.booleans()) else value
    aggregate_sql = f"{function}({text})"
    if draw(rarely(3)):
        aggregate_sql += f" FILTER (WHERE {draw(boolean(cols, 1))})"
    return aggregate_sql


@st.composite
def distinct_extreme_or_paired(draw, cols: list[Col], measures: list[Col]) -> str:
    """COUNT(DISTINCT col) of any column, MIN/MAX, and the aggregates of two columns (issue 18)."""
    choice = draw(st.sampled_from(range(4)))
    if choice == 0 or not measures:
        return f"COUNT(DISTINCT {draw(st.sampled_from(cols)).ref})"
    m = draw(st.sampled_from(measures)).ref
    if choice == 1:
        return f"{draw(st.sampled_from(['MIN', 'MAX']))}({m})"
    other = draw(st.sampled_from(measures)).ref
    function = draw(st.sampled_from(["CORR", "COVAR_SAMP", "COVAR_POP", "REGR_SLOPE", "REGR_INTERCEPT", "REGR_COUNT"]))
    if choice == 2:
        return f"{function}({m}, {other})"
    return f"{function}({m}, {other}) * 2 + MAX({m}) - MIN({other})"


@st.composite
def queries(draw, schema: Schema) -> str:
    source, cols, facts = draw(relations(schema))
    keys = [k for k in draw(st.lists(group_key(cols), max_size=2)) if k]
    keys = list(dict.fromkeys(keys))
    # keys alone sometimes (key-only GROUP BY, or SELECT DISTINCT of them)
    aggregates = draw(st.lists(aggregate(cols), min_size=0 if keys and draw(rarely(4)) else 1, max_size=3))
    items = [f"{k} AS k{i}" for i, k in enumerate(keys)] + [f"{a} AS a{i}" for i, a in enumerate(aggregates)]
    if not aggregates and draw(st.booleans()):
        return f"SELECT DISTINCT {', '.join(items)} FROM {source}"
    top = f"TOP {draw(st.integers(0, 5))} " if draw(rarely(20)) else ""
    sql = f"SELECT {top}{', '.join(items)} FROM {source}"
    if not draw(rarely(3)):
        sql += f" WHERE {draw(boolean(cols, draw(st.sampled_from([2, 3, 3, 1]))))}"
    if keys:
        style = draw(st.sampled_from(["expr", "alias", "ordinal"]))
        refs = {
            "expr": keys,
            "alias": [f"k{i}" for i in range(len(keys))],
            "ordinal": [str(i + 1) for i in range(len(keys))],
        }[style]
        sql += " GROUP BY " + ", ".join(refs)
        if draw(rarely(6)):
            sql += f" HAVING a0 > {draw(st.integers(-5, 50))}"
    if draw(rarely(4)):
        sql += " ORDER BY " + ("k0" if keys else "a0") + draw(st.sampled_from(["", " DESC"]))
    if draw(rarely(10)) and not top:
        sql += f" LIMIT {draw(st.integers(0, 5))}"
    return sql
