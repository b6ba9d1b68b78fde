"""Registration on Spark: the same engine artefact as DuckDB registration, bit for bit.

The steps mirror `Catalog._ingest` and `_build_engine_file`, as Spark jobs over the source:
every row's keyed-hash rank among its unit's rows, the verified facts (NULLs in columns not
declared nullable, rows per unit, constant_per_unit, multiplicities of public tables), then the
artefact: the rows with rank <= max_rows and each measure clamped and quantized.

The rank hashes the row's text, so the text must be DuckDB's `CAST(row(...) AS VARCHAR)` to the
byte (the manifest names this encoding, `ROW_TEXT_ENCODING`): NULL as `NULL`; text quoted with
`'` (and `\\` and `'` escaped by a backslash) exactly when DuckDB quotes it (empty, one of
`"'(),:=[]\\{}` inside, ASCII white space at either end, or `null` in any case); TIMESTAMPs
quoted (they contain ':'); DOUBLEs in the shortest text that reads back as the same number,
which is Python's `repr` and not Java's (so a Python UDF formats them, on the executors: the
cluster must run Python with pandas and pyarrow, `PYSPARK_PYTHON`), NaN with its sign.
DATE and TIMESTAMP values outside the years 1 to 9999 are stored as NULL (counted, and refused in
a column not declared nullable), as DuckDB registration stores them: within those years both
engines read, print and compute dates alike. FLOAT columns are refused (declare them DOUBLE):
DuckDB prints a FLOAT with more digits than the shortest spelling in cases no simple rule we
found reproduces, and the rank must not depend on a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.artefact import (
    ENGINE_ARTEFACT,
    QUANTIZED_PREFIX,
    RANK_COLUMN,
    ROW_TEXT_ENCODING,
    size_class,
    verify_non_null,
    verify_out_of_range,
    verify_units,
)
from sandbox.engine.backend import SparkOptions
from sandbox.engine.row_text import double_text
from sandbox.engine.spark_session import query_rows
from sandbox.errors import SchemaMismatch
from sandbox.metadata import advice, release_metadata
from sandbox.policy import Policy, Role
from sandbox.privacy.grid import clamp_bounds, grid_step

__all__ = ["SPARK_TYPES", "register_on_spark"]

SPARK_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "DOUBLE": "double",
    "FLOAT": "float",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "BOOLEAN": "boolean",
}
DATA_FILE = "data.parquet"
_QUOTE_INSIDE = r"[\"'(),:=\[\]\\{}]"
_SPACE_AT_START, _SPACE_AT_END = r"^[\t\n\x0B\f\r ]", r"[\t\n\x0B\f\r ]$"


def _row_text(policy: Policy) -> Any:
    from pyspark import cloudpickle
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.functions import udf

    from sandbox.engine import row_text

    # Shipped by value: the executors need Python with pandas and pyarrow, not this package.
    cloudpickle.register_pickle_by_value(row_text)
    doubles = udf(double_text, "string", useArrow=True)

    parts = []
    for name, column in policy.columns.items():
        c = F.col(f"`{name}`")
        if column.type == "VARCHAR":
            escaped = F.replace(F.replace(c, F.lit("\\"), F.lit("\\\\")), F.lit("'"), F.lit("\\'"))
            quoted = F.concat(F.lit("'"), escaped, F.lit("'"))
            needs = (
                (c == F.lit(""))
                | c.rlike(_QUOTE_INSIDE)
                | c.rlike(_SPACE_AT_START)
                | c.rlike(_SPACE_AT_END)
                | (F.lower(c) == F.lit("null"))
            )
            text = F.when(needs, quoted).otherwise(c)
        elif column.type == "DOUBLE":
            text = doubles(c)
        elif column.type == "TIMESTAMP":
            text = F.concat(F.lit("'"), c.cast("string"), F.lit("'"))
        else:
            text = c.cast("string")
        parts.append(F.coalesce(text, F.lit("NULL")))
    if len(parts) == 1:  # DuckDB writes a one-field row as (x,)
        return F.concat(F.lit("("), parts[0], F.lit(",)"))
    return F.concat(F.lit("("), F.concat_ws(", ", *parts), F.lit(")"))


def _stored(name: str, type_: str) -> Any:
    """As `catalog._stored`: the policy's type, every NaN the one positive NaN, and dates and
    timestamps outside 0001-01-01 .. 9999-12-31 as NULL."""
    from pyspark.sql import functions as F  # noqa: N812

    value = F.col(f"`{name}`").cast(SPARK_TYPES[type_])
    if type_ == "DOUBLE":
        value = F.when(F.isnan(value), F.lit(float("nan"))).otherwise(value)
    elif type_ in ("DATE", "TIMESTAMP"):
        value = F.when(_within_years(value), value)
    return value.alias(name)


def _within_years(value: Any) -> Any:
    """Years 1 to 9999 (a TIMESTAMP_NTZ compares with a DATE as its midnight)."""
    from pyspark.sql import functions as F  # noqa: N812

    return (value >= F.lit("0001-01-01").cast("date")) & (value < F.lit("10000-01-01").cast("date"))


def _out_of_range(source: Any, policy: Policy) -> dict[str, int]:
    """As `Catalog._out_of_range`: how many dates and timestamps are stored as NULL."""
    from pyspark.sql import functions as F  # noqa: N812

    temporal = [n for n, c in policy.columns.items() if c.type in ("DATE", "TIMESTAMP")]
    if not temporal:
        return {}
    counts = []
    for name in temporal:
        value = F.col(f"`{name}`").cast(SPARK_TYPES[policy.columns[name].type])
        counts.append(F.sum(F.when(value.isNotNull() & ~_within_years(value), 1).otherwise(0)).alias(name))
    row = source.select(*counts).collect()[0]
    return verify_out_of_range(policy, {name: int(row[name] or 0) for name in temporal})


def _metadata_query(session: Any, data: Any) -> Any:
    """metadata.py's statements (DuckDB's SQL over `ranked`) on Spark: transpiled by sqlglot
    (they hold nothing whose meaning differs), over a temporary view of the ranked rows."""
    import sqlglot

    data.createOrReplaceTempView("ranked")

    def query(sql: str) -> list[tuple]:
        spark_sql = sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)[0]
        return [tuple(row) for row in query_rows(session, spark_sql)]

    return query


def register_on_spark(
    session: Any, policy: Policy, source: Path, out: Path, options: SparkOptions, secret: bytes
) -> dict[str, Any]:
    """Rank, verify, clamp and quantize `source` (Parquet the cluster can read) with Spark jobs;
    write `out/data.parquet` (every row, ranked) and `out/engine.parquet` (the artefact) where
    the cluster sees `out`; return the manifest's facts."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    url = options.artefact_url
    floats = [n for n, c in policy.columns.items() if c.type == "FLOAT"]
    if floats:
        raise SchemaMismatch(
            f"{policy.name}: column {floats[0]!r} is FLOAT, which a Spark-backed dataset cannot rank exactly as "
            "DuckDB does; declare it `type: DOUBLE` in the policy (every FLOAT converts exactly)",
            dataset=policy.name,
            column=floats[0],
        )
    raw = session.read.parquet(url(str(source)))
    facts: dict[str, Any] = {"out_of_range": _out_of_range(raw, policy)}
    frame = raw.select(*[_stored(n, c.type) for n, c in policy.columns.items()])
    if not policy.public:
        unit = F.col(f"`{policy.unit}`")
        digest = F.sha2(F.concat(F.lit(secret.hex()), _row_text(policy)), 256)
        rank = F.row_number().over(Window.partitionBy(unit).orderBy(digest)).cast("int")
        frame = frame.withColumn(RANK_COLUMN, rank)
    data_url = url(str(out / DATA_FILE))
    frame.write.mode("overwrite").option("compression", "zstd").parquet(data_url)
    data = session.read.parquet(data_url)
    rows = data.count()
    declared = [n for n, c in policy.columns.items() if not c.nullable and c.role is not Role.identifier]
    if declared:
        nulls = data.select(*[F.sum(F.col(f"`{n}`").isNull().cast("int")).alias(n) for n in declared]).collect()[0]
        facts["non_null"] = verify_non_null(policy, {n: int(nulls[n] or 0) for n in declared})
    else:
        facts["non_null"] = []
    if policy.public:
        counts = {}
        for name in policy.columns:
            top = data.groupBy(F.col(f"`{name}`")).count().agg(F.max("count")).collect()[0][0]
            counts[name] = int(top or 0)
        facts["multiplicity"] = counts
    else:
        facts |= _unit_facts(data, policy)
    facts |= _artefact(session, data, policy, url(str(out / ENGINE_ARTEFACT)))
    facts["metadata"] = release_metadata(policy, _metadata_query(session, data))  # DP, from metadata_epsilon
    facts["warnings"] = advice(policy, facts["metadata"])
    return {
        "name": policy.name,
        "policy": policy.model_dump(mode="json"),
        "rows": rows,
        "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **facts,
    }


def _unit_facts(data: Any, policy: Policy) -> dict[str, Any]:
    from pyspark.sql import functions as F  # noqa: N812

    unit = F.col(f"`{policy.unit}`")
    dims = [n for n, c in policy.columns.items() if c.role is Role.dimension]
    facts = {"null_unit_rows": data.where(unit.isNull()).count()}
    per_unit = [F.count(F.lit(1)).alias("__n")]
    per_unit += [
        (F.countDistinct(F.col(f"`{d}`")) + F.max(F.col(f"`{d}`").isNull().cast("int"))).alias(d) for d in dims
    ]
    worst = [F.max("__n").alias("__max"), F.count(F.lit(1)).alias("__units"), F.sum("__n").alias("__total")]
    worst += [F.max(F.col(f"`{d}`")).alias(d) for d in dims]
    row = data.groupBy(unit).agg(*per_unit).agg(*worst).collect()[0]
    max_rows = row["__max"]
    constant = [d for d in dims if max_rows is None or max_rows <= 1 or row[d] <= 1]
    facts |= verify_units(policy, max_rows=max_rows, units=row["__units"], rows_total=row["__total"], constant=constant)
    return facts


def _artefact(session: Any, data: Any, policy: Policy, target: str) -> dict[str, Any]:
    """The rows bounding can keep, with each aggregable column clamped and quantized as
    `Catalog._build_engine_file` does (ROUND half away from zero, in both engines)."""
    from pyspark.sql import functions as F  # noqa: N812

    quantized: dict[str, float] = {}
    extra = []
    for name, column in policy.columns.items():
        if column.aggregable:
            lo, hi = clamp_bounds(column)
            step = grid_step(column)
            quantized[name] = step
            value = F.col(f"`{name}`").cast("double")
            clamped = F.when(value.isNull(), F.lit(None)).otherwise(F.least(F.greatest(value, F.lit(lo)), F.lit(hi)))
            extra.append(F.round(clamped / F.lit(step)).cast("int").alias(QUANTIZED_PREFIX + name))
    artefact = data.select("*", *extra)
    if not policy.public:
        artefact = artefact.where(F.col(RANK_COLUMN) <= F.lit(policy.privacy_unit.max_rows))
    artefact.write.mode("overwrite").option("compression", "zstd").parquet(target)
    engine_rows = session.read.parquet(target).count()
    return {
        "quantized": quantized,
        "prebounded": not policy.public,
        "size_class": size_class(engine_rows),
        "engine_rows": engine_rows,
        "artefact": {"file": ENGINE_ARTEFACT, "row_text": ROW_TEXT_ENCODING, "built_by": "spark"},
    }
