"""Extract SmartNoise SQL's PUMS test queries into tests/peers/smartnoise_pums.yaml.

    python benchmarks/peers/smartnoise_pums_extract.py [--repo GIT_DIR] [--commit SHA]

`--repo` is a clone (or the bare git directory) of opendp/smartnoise-sdk. Every string in
`sql/tests/**/*.py` that contains SELECT and names a PUMS table, and every statement of the
`sql/tests/query/queries/**/*.sql` files over PUMS, becomes one entry per distinct text
(whitespace collapsed, a trailing `;` dropped), with every place it occurs. Which SmartNoise
test database a query runs against (its metadata and CSV) is read off each test module by
hand: `SETUPS` below, by file and line. A few strings are left out, each with why (`EXCLUDED`).

The file is rewritten in place: the `smartnoise` column (benchmarks/peers/smartnoise_pums_check.py)
and our expectation (`expect`, `rule`, `why`) of an entry whose text is unchanged are kept.
Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "tests" / "peers" / "smartnoise_pums.yaml"
DEFAULT_GIT = Path("/work/.mirror/opendp+smartnoise-sdk/repo")

# SmartNoise's test databases (sql/tests/setup/dataloader/db.py): metadata file and CSV. Their
# DbCollection reads PUMS_null with PUMS_dup.yaml; test_count_allcounts.py reads PUMS_null.csv
# with PUMS_pid.yaml; test_pandas_dict.py has both tables in PUMS_two_table.yaml.
DATABASES = {
    "PUMS": {"metadata": "datasets/PUMS.yaml", "csv": "datasets/PUMS.csv", "ours": "pums_pid"},
    "PUMS_pid": {"metadata": "datasets/PUMS_pid.yaml", "csv": "datasets/PUMS_pid.csv", "ours": "pums_pid"},
    "PUMS_dup": {"metadata": "datasets/PUMS_dup.yaml", "csv": "datasets/PUMS_dup.csv", "ours": "pums_null"},
    "PUMS_null": {"metadata": "datasets/PUMS_dup.yaml", "csv": "datasets/PUMS_null.csv", "ours": "pums_null"},
    "PUMS_pid_on_null": {"metadata": "datasets/PUMS_pid.yaml", "csv": "datasets/PUMS_null.csv", "ours": "pums_null"},
    "PUMS_two_table": {
        "metadata": "datasets/PUMS_two_table.yaml",
        "csv": {"PUMS.PUMS": "datasets/PUMS.csv", "PUMS.PUMS_null": "datasets/PUMS_null.csv"},
        "ours": {"PUMS.PUMS": "pums_pid", "PUMS.PUMS_null": "pums_null"},
    },
}

# file -> database, or {line: [databases]} with "*" for the rest of the file. Read off each
# module: the metadata path it loads or the `database=` it asks the fixture for.
SETUPS: dict[str, object] = {
    "sql/tests/ast/test_count_compare.py": "PUMS_pid",
    "sql/tests/ast/test_visualize.py": "PUMS_pid",
    "sql/tests/engines/test_pandas_dict.py": "PUMS_two_table",
    "sql/tests/metadata/test_load_from.py": "PUMS_pid",
    "sql/tests/odometer/test_odometer.py": "PUMS_pid",
    "sql/tests/private_reader/test_pre_aggregated.py": "PUMS_pid",
    "sql/tests/query/test_fq_object_name.py": "PUMS",
    "sql/tests/query/test_grouping_clamp.py": "PUMS_pid",
    "sql/tests/query/test_having.py": "PUMS",
    "sql/tests/query/test_having_expressions.py": "PUMS_dup",
    "sql/tests/query/test_i32_overflow.py": "PUMS",
    "sql/tests/query/test_opt_rewrite.py": "PUMS_pid",
    "sql/tests/query/test_order_by_expressions.py": "PUMS_dup",
    "sql/tests/query/test_query.py": "PUMS_pid",
    "sql/tests/query/test_query_error.py": "PUMS_pid",
    "sql/tests/query/test_thresholds.py": {44: ["PUMS"], 62: ["PUMS"], 72: ["PUMS"], "*": ["PUMS_pid"]},
    "sql/tests/query/test_top.py": {
        35: ["PUMS_dup"], 49: ["PUMS_dup"], 55: ["PUMS_pid", "PUMS"], "*": ["PUMS"],
    },
    "sql/tests/rewriter/test_count_allcounts.py": "PUMS_pid_on_null",
    "sql/tests/rewriter/test_rewriting.py": "PUMS_pid",
    "sql/tests/xpath/test_xpath.py": "PUMS_pid",
    "sql/tests/query/queries/parse/stringfuncs.sql": "PUMS_pid",
    "sql/tests/query/queries/validate_pums/validate_pums.sql": "PUMS_pid",
    "sql/tests/query/queries/validate_pums/validate_pums_fail.sql": "PUMS_pid",
}

# f-strings of engines/test_db_count.py, expanded over the databases each loop runs.
DB_COUNT = "sql/tests/engines/test_db_count.py"
DB_COUNT_QUERIES = {
    24: ("SELECT COUNT(age) AS n FROM PUMS.{t}", ["PUMS", "PUMS_pid", "PUMS_dup", "PUMS_null"]),
    48: ("SELECT COUNT(age) FROM PUMS.PUMS", ["PUMS_null"]),
    59: ("SELECT COUNT(*) AS n FROM PUMS.{t}", ["PUMS", "PUMS_pid", "PUMS_dup", "PUMS_null"]),
    81: ("SELECT COUNT(*) AS n FROM PUMS.{t}", ["PUMS_dup", "PUMS_null"]),
    96: ("SELECT COUNT(DISTINCT pid) AS n FROM PUMS.{t}", ["PUMS_pid", "PUMS_dup", "PUMS_null"]),
    122: ("SELECT COUNT(age) AS n FROM PUMS.{t}", ["PUMS_null"]),
}

EXCLUDED = [
    {
        "where": "sql/tests/engines/test_db_count.py:24,59",
        "sql": "SELECT COUNT(age) AS n FROM PUMS.PUMS_large; SELECT COUNT(*) AS n FROM PUMS.PUMS_large",
        "why": "PUMS_large (1.2 million rows, another schema) is not among the shared PUMS samples",
    },
    {
        "where": "sql/tests/query/test_order_by.py:8",
        "sql": "SELECT start_date, SUM(sales), start_time FROM PUMS.PUMS GROUP BY start_date, start_time "
        "ORDER BY start_date DESC, start_time",
        "why": "a made-up table that is only called PUMS.PUMS (columns start_date, start_time, sales), "
        "answered from pre-aggregated rows",
    },
    {
        "where": "sql/tests/query/test_opt_rewrite.py:54",
        "sql": 'SELECT COUNT (DISTINCT pid) AS foo, COUNT(DISTINCT "PiD") AS bar FROM PUMS.PUMS',
        "why": 'a made-up two-column table (pid and a case-sensitive "PiD") called PUMS.PUMS',
    },
]
EXCLUDED_PLACES = {("sql/tests/query/test_order_by.py", 8), ("sql/tests/query/test_opt_rewrite.py", 54)}


@dataclass
class Found:
    sql: str
    places: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={repo}", *args], check=True, capture_output=True, text=True).stdout


def key(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip()


def databases_for(path: str, line: int) -> list[str]:
    setup = SETUPS[path]
    if isinstance(setup, str):
        return [setup]
    return setup.get(line, setup["*"])


def python_strings(path: str, text: str):
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            s = node.value
            if (path, node.lineno) in EXCLUDED_PLACES:
                continue
            if re.search(r"\bselect\b", s, re.I) and re.search(r"\bpums", s, re.I):
                yield node.lineno, s


def sql_statements(text: str):
    """Statements of a .sql file, as SmartNoise's test drivers split them, with their first line."""
    line, start, buf = 1, None, []
    for ch in text:
        if start is None and not ch.isspace():
            start = line
        if ch == ";":
            if start is not None:
                yield start, "".join(buf)
            start, buf = None, []
            continue
        buf.append(ch)
        if ch == "\n":
            line += 1
    if start is not None and "".join(buf).strip():
        yield start, "".join(buf)


def extract(repo: Path, commit: str) -> dict[str, Found]:
    found: dict[str, Found] = {}

    def add(sql: str, place: str, dbs: list[str]) -> None:
        entry = found.setdefault(key(sql), Found(sql=key(sql)))
        entry.places.append(place)
        entry.databases.extend(d for d in dbs if d not in entry.databases)

    files = git(repo, "ls-tree", "-r", "--name-only", commit, "sql/tests").split()
    for path in sorted(files):
        if "/setup/" in path:
            continue
        if path == DB_COUNT:
            for line, (template, dbs) in DB_COUNT_QUERIES.items():
                add(template.format(t="PUMS"), f"{path}:{line}", dbs)
            continue
        if path.endswith(".py"):
            for line, s in python_strings(path, git(repo, "show", f"{commit}:{path}")):
                add(s, f"{path}:{line}", databases_for(path, line))
        elif path.endswith(".sql") and path.startswith("sql/tests/query/queries/"):
            for line, s in sql_statements(git(repo, "show", f"{commit}:{path}")):
                if re.search(r"\bpums", s, re.I):
                    add(s, f"{path}:{line}", databases_for(path, line))
    unknown = {p.split(":")[0] for f in found.values() for p in f.places} - set(SETUPS) - {DB_COUNT}
    assert not unknown, f"no database known for {unknown}: add them to SETUPS"
    return found


TABLE = re.compile(r"\b(?:PUMS\.PUMS\.PUMS|PUMS\.PUMS_null|PUMS\.PUMS|pums_null|pums)\b", re.I)


def ours(sql: str, database: str) -> str:
    """The query on our dataset: their table name replaced by our registration's name."""
    mapping = DATABASES[database]["ours"]

    def name(match: re.Match) -> str:
        if isinstance(mapping, str):
            return mapping
        return mapping["PUMS.PUMS_null" if "null" in match.group(0).lower() else "PUMS.PUMS"]

    return TABLE.sub(name, sql)


HEADER = """\
# SmartNoise SQL's test queries over the PUMS samples, each with what SmartNoise answers and what
# we expect of our compiler (tests/peers/test_smartnoise_pums.py checks the expectation).
#
# Source: opendp/smartnoise-sdk, commit {commit} ({date}), files under
# sql/tests/ (see `sources`). SmartNoise SDK is MIT licensed:
#   Copyright (c) 2020-2021 President and Fellows of Harvard College
#   (full notice: tests/peers/SMARTNOISE_LICENSE)
# The queries are copied verbatim from their tests; PUMS_pid.csv and PUMS_null.csv of that commit
# are byte-identical to ../shared/data/pums.
#
# Regenerate:
#   query list:  .venv/bin/python benchmarks/peers/smartnoise_pums_extract.py --repo <smartnoise-sdk git dir>
#   smartnoise:  benchmarks/envs/smartnoise/bin/python benchmarks/peers/smartnoise_pums_check.py --repo <same>
#                (the venv: .venv/bin/python -m benchmarks.peer_envs; smartnoise-sql 1.0.10)
#   README table: .venv/bin/python -m tests.peers.report
#
# Fields: id; sql (theirs, whitespace collapsed); sources (file:line of every occurrence);
# databases (SmartNoise test database(s) it runs against, see `databases` at the end);
# ours (the same query on our dataset names); smartnoise (`accepted`, or `refused: <their error>`,
# from PrivateReader.execute with their metadata and CSV); expect (`accepted` or `refused`);
# for refusals `rule` (our SQLRejected rule, or the error class) and `why`: `privacy: ...` (a
# documented privacy decision) or `missing: ...` (a feature we lack).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=DEFAULT_GIT)
    parser.add_argument("--commit", default="HEAD")
    args = parser.parse_args()
    commit = git(args.repo, "rev-parse", args.commit).strip()
    date = git(args.repo, "show", "-s", "--format=%cs", commit).strip()
    previous = {}
    if OUT.exists():
        previous = {q["sql"]: q for q in yaml.safe_load(OUT.read_text())["queries"]}
    found = extract(args.repo, commit)
    queries = []
    for i, entry in enumerate(found.values(), start=1):
        old = previous.get(entry.sql, {})
        q = {
            "id": f"sn{i:03d}",
            "sql": entry.sql,
            "sources": entry.places,
            "databases": entry.databases,
            "ours": list(dict.fromkeys(ours(entry.sql, d) for d in entry.databases)),
        }
        for kept in ("smartnoise", "expect", "rule", "why"):
            if kept in old:
                q[kept] = old[kept]
        queries.append(q)
    doc = {
        "source": {"repository": "opendp/smartnoise-sdk", "commit": commit, "date": date,
                   "licence": "MIT, Copyright (c) 2020-2021 President and Fellows of Harvard College"},
        "queries": queries,
        "databases": DATABASES,
        "excluded": EXCLUDED,
    }
    write(doc)
    print(f"{len(queries)} distinct queries -> {OUT}")


def load() -> dict:
    return yaml.safe_load(OUT.read_text())


def write(doc: dict) -> None:
    """The data file: the header (with the source commit) and the document, keys in order."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
    OUT.write_text(HEADER.format(commit=doc["source"]["commit"], date=doc["source"]["date"]) + "\n" + body)


if __name__ == "__main__":
    main()
