"""Which of SmartNoise SQL's PUMS test queries SmartNoise itself answers: fills the `smartnoise`
column of tests/peers/smartnoise_pums.yaml.

    .venv/bin/python -m benchmarks.peer_envs          # once: benchmarks/envs/smartnoise/
    benchmarks/envs/smartnoise/bin/python benchmarks/peers/smartnoise_pums_check.py [--repo GIT_DIR]

Runs in SmartNoise's own venv (smartnoise-sql 1.0.10, see benchmarks/peer_envs.py). Each query
goes through `PrivateReader.execute` (epsilon 1, delta 1e-5) over their pandas reader, once per
SmartNoise test database it runs against in their tests, with that database's metadata file and
CSV read from the SmartNoise commit the data file names (`--repo`: their git directory), and
every table name read as that database's table, as their test fixture does. A query is
`accepted` when every such run returns rows; otherwise `refused: <database>: <their error>`.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from smartnoise_pums_extract import DEFAULT_GIT, load, write  # noqa: E402
from snsql import Privacy, from_connection  # noqa: E402
from snsql.metadata import Metadata  # noqa: E402
from snsql.sql.parse import QueryParser  # noqa: E402

PRIVACY = {"epsilon": 1.0, "delta": 1e-5}


def show(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={repo}", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


class Databases:
    """Their metadata and CSVs at the commit, read once each."""

    def __init__(self, repo: Path, commit: str, spec: dict) -> None:
        self.repo, self.commit, self.spec = repo, commit, spec
        self._frames: dict[str, pd.DataFrame] = {}

    def frame(self, path: str) -> pd.DataFrame:
        if path not in self._frames:
            self._frames[path] = pd.read_csv(io.StringIO(show(self.repo, self.commit, path)))
        return self._frames[path]

    def reader(self, name: str):
        """A fresh PrivateReader (its odometer starts at 0), as their tests build one."""
        spec = self.spec[name]
        metadata = Metadata.from_dict(yaml.safe_load(show(self.repo, self.commit, spec["metadata"])))
        csv = spec["csv"]
        data = self.frame(csv) if isinstance(csv, str) else {table: self.frame(p) for table, p in csv.items()}
        return from_connection(data, engine="pandas", metadata=metadata, privacy=Privacy(**PRIVACY))


def renamed(sql: str, database: str) -> str:
    """Every table named as the database's table, as their test fixture does
    (sql/tests/setup/dataloader/factories/fixture_private_reader.py): `pums`, `pums.pums` and
    `PUMS.PUMS.PUMS` all mean the one PUMS table, so a query is judged on what it asks."""
    query = QueryParser().query(sql)
    for table in query.xpath("//Table"):
        name = str(table.name).lower()
        table.name = "PUMS.PUMS_null" if database == "PUMS_two_table" and name.endswith("null") else "PUMS.PUMS"
    return str(query)


def verdict(databases: Databases, sql: str, names: list[str]) -> str:
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = databases.reader(name).execute(renamed(sql, name))
            if rows is None:
                raise ValueError("no result")
        except Exception as exc:  # what SmartNoise says, verbatim (first line, shortened)
            message = " ".join(str(exc).split())[:240]
            return f"refused: {name}: {type(exc).__name__}: {message}"
    return "accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=DEFAULT_GIT)
    args = parser.parse_args()
    doc = load()
    databases = Databases(args.repo, doc["source"]["commit"], doc["databases"])
    for q in doc["queries"]:
        q["smartnoise"] = verdict(databases, q["sql"], q["databases"])
        print(f"{q['id']}: {q['smartnoise'][:120]}", file=sys.stderr)
    write(doc)
    accepted = sum(q["smartnoise"] == "accepted" for q in doc["queries"])
    print(f"SmartNoise accepts {accepted} of {len(doc['queries'])} distinct queries")


if __name__ == "__main__":
    main()
