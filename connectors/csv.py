"""CSV files, converted once to Parquet with the policy's column types.

The policy's types are authoritative because inference guesses wrong on exactly the columns
that matter: codes such as sex "0"/"1" look like integers but are categories, and a column of
whole numbers written "17000.0" looks like a float. Empty fields are NULL. Values that do not
parse as the declared type stop the snapshot with the column and line, never the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import duckdb

from connectors.base import Snapshot, check_schema, register
from sandbox.errors import ConnectorError, SchemaMismatch

if TYPE_CHECKING:
    from sandbox.policy import Policy

__all__ = ["CsvConnector"]

# The first line is the header (`skip = 0`: no guessing that a preamble precedes it). Rejected
# lines are recorded, not fatal, so the error can name column and line from a table instead of
# quoting DuckDB's message, which repeats the offending line's values; recording also makes
# the dialect sniffer tolerate the bad lines, so both reads below must use the same options.
_OPTIONS = "header = true, skip = 0, store_rejects = true"
_HEADER = f"DESCRIBE SELECT * FROM read_csv($path, {_OPTIONS})"
_READ = f"FROM read_csv($path, {_OPTIONS}, types = $types)"
_REJECTS = """
    SELECT column_name, error_type::VARCHAR, count(*), min(line)
    FROM reject_errors GROUP BY ALL ORDER BY min(line) LIMIT 1
"""


class CsvConnector:
    kind: ClassVar[str] = "csv"

    def snapshot(self, policy: Policy, location: str, workdir: Path) -> Snapshot:
        path = Path(location)
        if not path.is_file():
            raise ConnectorError(
                f"{path}: no such CSV file; check source.location in policy {policy.name!r}",
                dataset=policy.name,
            )
        types = {name: column.type for name, column in policy.columns.items()}
        out = workdir / f"{policy.name}.parquet"
        workdir.mkdir(parents=True, exist_ok=True)
        with duckdb.connect() as con:
            try:
                header = con.execute(_HEADER, {"path": str(path)}).fetchall()
            except duckdb.Error as exc:
                raise ConnectorError(
                    f"{path}: cannot be read as CSV ({str(exc).strip().splitlines()[0]}); "
                    f"check the file is delimited text with a header line",
                    dataset=policy.name,
                ) from None
            # Missing columns are reported before reading, with the file's real header.
            found = {name: types.get(name, inferred) for name, inferred, *_ in header}
            check_schema(policy, found, str(path))
            relation = con.sql(_READ, params={"path": str(path), "types": types})
            relation.select(*map(duckdb.ColumnExpression, types)).write_parquet(str(out))
            rejected = con.execute(_REJECTS).fetchone()
        if rejected is not None:
            raise _rejection(policy, path, *rejected)
        return Snapshot(parquet=out, schema=types)


def _rejection(
    policy: Policy, path: Path, column: str, error: str, count: int, line: int
) -> ConnectorError:
    where = f"line {line}" + (f" and {count - 1} more" if count > 1 else "")
    if error == "CAST":
        expected = policy.columns[column].type
        return SchemaMismatch(
            f"{path}: column {column!r} has values that are not {expected} ({where}); fix the "
            f"file, or declare the column with a type that fits it (e.g. VARCHAR) in policy "
            f"{policy.name!r}",
            dataset=policy.name,
            column=column,
            expected=expected,
            line=line,
        )
    return ConnectorError(
        f"{path}: malformed CSV, {error.lower()} ({where}); fix the file (one field per header "
        f"column on every line, quotes closed, UTF-8 text)",
        dataset=policy.name,
        line=line,
    )


register(CsvConnector())
