"""SmartNoise SQL's PUMS test queries against our compiler: the README table.

    .venv/bin/python -m tests.peers.report            # the table, as README's "Accepted SQL" has it
    .venv/bin/python -m tests.peers.report --check    # exit 1 if an entry's expectation is stale
    .venv/bin/python -m tests.peers.report --readme   # write the table into README.md

Reads tests/peers/smartnoise_pums.yaml (the queries, SmartNoise's answers and our expectations),
compiles every query on our dataset names against the PUMS policies (no data is read to compile),
and checks the stored expectations against what it does (stale entries are listed on stderr;
`--readme` refuses to write while any is stale). The table counts distinct queries, how many
SmartNoise accepts, how many we accept, and lists every query SmartNoise accepts that we refuse,
with our rule and why. tests/peers/test_smartnoise_pums.py runs the same `outcome()` and checks
that README's table is `table()` of the file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.compiler import compile_query
from sandbox.errors import SandboxError

HERE = Path(__file__).resolve().parent
DATA = HERE / "smartnoise_pums.yaml"
POLICIES = HERE.parents[1] / "policies"
PUMS_POLICIES = ("pums_pid.yaml", "pums_null.yaml")
WHY_KINDS = ("privacy:", "missing:", "invalid:")
README = HERE.parents[1] / "README.md"
TABLE_START = "| SmartNoise SQL's PUMS test queries | queries |"


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    rule: str = ""
    message: str = ""

    def __str__(self) -> str:
        return "accepted" if self.accepted else f"refused [{self.rule}] {self.message}"


def load() -> dict:
    return yaml.safe_load(DATA.read_text())


def outcome(sql: str, catalog) -> Outcome:
    """Compile `sql` as an analyst would (epsilon 1, the PUMS cap). A refusal is any error the
    sandbox raises on purpose; its rule is the SQLRejected rule, or the error's code."""
    try:
        compile_query(sql, catalog, epsilon=1.0)
    except SandboxError as exc:
        return Outcome(False, exc.fields.get("rule") or exc.code, exc.message)
    return Outcome(True)


def query_outcome(query: dict, catalog) -> Outcome:
    """One outcome per query: refused if any of its forms on our datasets is refused."""
    for sql in query["ours"]:
        result = outcome(sql, catalog)
        if not result.accepted:
            return result
    return Outcome(True)


def pums_catalog(data_dir: Path):
    """The two PUMS policies only: what the report needs, without building the demo city."""
    from sandbox.catalog import Catalog
    from sandbox.policy import load_policy

    catalog = Catalog(data_dir)
    for name in PUMS_POLICIES:
        catalog.register(load_policy(POLICIES / name), POLICIES / name)
    return catalog


def table(doc: dict) -> str:
    """The README table, from the stored answers and expectations (the test keeps those true)."""
    queries = doc["queries"]
    theirs = [q for q in queries if q["smartnoise"] == "accepted"]
    ours = [q for q in queries if q["expect"] == "accepted"]
    both = [q for q in theirs if q["expect"] == "accepted"]
    gaps = [q for q in theirs if q["expect"] != "accepted"]
    by_kind: dict[str, int] = {}
    for q in gaps:
        kind = q.get("why", "?").split(":")[0]
        by_kind[kind] = by_kind.get(kind, 0) + 1
    lines = [
        TABLE_START,
        "|---|---|",
        f"| distinct queries | {len(queries)} |",
        f"| SmartNoise 1.0.10 accepts | {len(theirs)} |",
        f"| we accept | {len(ours)} |",
        f"| both accept | {len(both)} |",
        f"| we accept, SmartNoise refuses | {len(ours) - len(both)} |",
        f"| SmartNoise accepts, we refuse | {len(gaps)}"
        + (" (" + ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items())) + ")" if gaps else "")
        + " |",
    ]
    if not gaps:
        return "\n".join(lines)
    lines += [
        "",
        "Every query SmartNoise accepts that we refuse, by reason (`privacy:` a documented privacy decision,",
        "`missing:` a feature we lack; `rule` is the rule that refuses it; the queries, verbatim, are in",
        "`tests/peers/smartnoise_pums.yaml`):",
        "",
        "| why | rule | queries | e.g. (on our dataset names) |",
        "|---|---|---|---|",
    ]
    groups: dict[str, list[dict]] = {}
    for q in gaps:
        groups.setdefault(q.get("why", "(no reason recorded)"), []).append(q)
    for why, members in sorted(groups.items(), key=lambda g: (g[0].split(":")[0] != "missing", -len(g[1]), g[0])):
        rules = ", ".join(dict.fromkeys(q.get("rule", "?") for q in members))
        ids = " ".join(q["id"] for q in members)
        example, reason = members[0]["ours"][0].replace("|", "\\|"), why.replace("|", "\\|")
        lines.append(f"| {reason} | {rules} | {ids} | `{example}` |")
    return "\n".join(lines)


def provenance(doc: dict) -> str:
    """Which code produced the table: our commit (and whether the compiler had changes on top)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE).stdout.strip()

    dirty = " with uncommitted changes to sandbox/" if git("status", "--porcelain", "--", "../../sandbox") else ""
    return (
        f"Produced by `python -m tests.peers.report --readme` at commit {git('rev-parse', '--short', 'HEAD') or '?'}"
        f"{dirty} (SmartNoise commit {doc['source']['commit'][:7]})."
    )


def write_readme(text: str) -> None:
    """Replace the table of README's subsection (from its first row to the next `## `)."""
    readme = README.read_text()
    start = readme.index(TABLE_START)
    end = readme.index("\n## ", start)
    README.write_text(readme[:start] + text + "\n" + readme[end:])


def stale(doc: dict, outcomes: dict[str, Outcome]) -> list[str]:
    """Entries whose stored expectation no longer matches what the compiler does."""
    out = []
    for q in doc["queries"]:
        now = outcomes[q["id"]]
        expected_rule = q.get("rule", "")
        if q.get("expect") == "accepted" and not now.accepted:
            out.append(f"{q['id']}: expected accepted, now {now}")
        elif q.get("expect") == "refused" and (now.accepted or now.rule != expected_rule):
            out.append(f"{q['id']}: expected refused [{expected_rule}], now {now}")
        elif q.get("expect") not in ("accepted", "refused"):
            out.append(f"{q['id']}: no expectation; now {now}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if an expectation is stale")
    parser.add_argument("--readme", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    doc = load()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = pums_catalog(Path(tmp))
        problems = stale(doc, {q["id"]: query_outcome(q, catalog) for q in doc["queries"]})
    text = table(doc) + "\n\n" + provenance(doc)
    print(text)
    for line in problems:
        print(f"stale: {line}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} stale entries: the table above shows the stored expectations, not the compiler's "
              "answers; update tests/peers/smartnoise_pums.yaml first", file=sys.stderr)
    if args.readme and not problems:
        write_readme(text)
    if args.check or (args.readme and problems):
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
