"""SmartNoise SQL's own PUMS test queries (tests/peers/smartnoise_pums.yaml): each is compiled on
our dataset names and must do what its entry expects. `accepted` queries must also run as the
worker runs them, every released cell with both ends of its interval; `refused` ones must be
refused by the recorded rule. A feature that makes a refused query pass, or a change that makes
an accepted one fail, fails here until the entry is updated (`python -m tests.peers.report
--check` lists every stale entry at once)."""

from __future__ import annotations

import pytest

from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from tests.peers.report import DATA, README, WHY_KINDS, load, outcome, table

DOC = load()
QUERIES = DOC["queries"]
CASES = [(q, sql) for q in QUERIES for sql in q["ours"]]
IDS = [f"{q['id']}-{'pums_null' if 'pums_null' in sql else 'pums_pid'}" for q, sql in CASES]
UPDATE = f"update the entry in {DATA.relative_to(DATA.parents[2])} (expect, rule, why) and README's table"


@pytest.mark.parametrize(("query", "sql"), CASES, ids=IDS)
def test_the_compiler_does_what_the_entry_expects(query, sql, demo_catalog) -> None:
    result = outcome(sql, demo_catalog)
    if query["expect"] == "refused":
        assert not result.accepted, f"{query['id']} is now accepted: {UPDATE} ({sql})"
        assert result.rule == query["rule"], (
            f"{query['id']} is refused by another rule: {result} (expected {query['rule']}); {UPDATE}"
        )
        return
    assert result.accepted, f"{query['id']} is now refused: {result}; {UPDATE} ({sql})"
    _run_with_intervals(sql, demo_catalog)


def _run_with_intervals(sql: str, catalog) -> None:
    """Run the plan as the worker does; every released non-key cell has both interval ends
    around its value, except a ratio whose denominator may be 0, which the release says."""
    from sandbox.compiler import compile_query

    plan = compile_query(sql, catalog, epsilon=1.0)
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        output = run_plan(con, plan)
    finally:
        con.close()
    said = [str(n) for n in output["notes"]]
    for row in output["table"].to_pylist():
        if row["__suppressed"]:
            continue
        values = list(row.values())
        for i, column in enumerate(plan.outputs):
            if column.kind == "key":
                continue
            value, lo, hi = values[i], row[f"__lo_{i}"], row[f"__hi_{i}"]
            if value is not None and None in (lo, hi):
                assert "/" in sql, f"{column.name}: no interval ({sql})"
                assert any(f"of {column.name} have no finite interval" in n for n in said), said
                continue
            assert lo is not None and hi is not None, f"{column.name}: no interval ({sql})"
            if isinstance(value, float) and value == value:
                slack = 1e-6 * max(1.0, abs(value))
                assert lo - slack <= value <= hi + slack, f"{column.name}: {value} outside [{lo}, {hi}] ({sql})"


def test_the_data_file_is_complete() -> None:
    """Every entry has its source, SmartNoise's answer and our expectation with a reason; a query
    SmartNoise answers is never called invalid SQL."""
    assert DOC["source"]["repository"] == "opendp/smartnoise-sdk" and len(DOC["source"]["commit"]) == 40
    assert (DATA.parent / "SMARTNOISE_LICENSE").read_text().count("MIT License") == 1
    ids = [q["id"] for q in QUERIES]
    assert len(ids) == len(set(ids)) and len({q["sql"] for q in QUERIES}) == len(QUERIES)
    for q in QUERIES:
        assert q["sources"] and q["databases"] and q["ours"], q["id"]
        assert q["smartnoise"] == "accepted" or q["smartnoise"].startswith("refused: "), q["id"]
        assert q["expect"] in ("accepted", "refused"), q["id"]
        if q["expect"] == "accepted":
            assert "rule" not in q and "why" not in q, f"{q['id']}: an accepted query has no refusal reason"
            continue
        assert q["rule"], q["id"]
        assert q["why"].startswith(WHY_KINDS), f"{q['id']}: why must start with one of {WHY_KINDS}"
        if q["smartnoise"] == "accepted":
            assert not q["why"].startswith("invalid:"), f"{q['id']}: SmartNoise answers it, so it is not invalid SQL"


def test_the_readme_table_is_the_data_files() -> None:
    """README's "Measured against SmartNoise SQL's PUMS test queries" shows the file as it is
    (regenerate with `python -m tests.peers.report --readme`)."""
    assert table(DOC) + "\n\nProduced by `python -m tests.peers.report --readme`" in README.read_text(), (
        "README's SmartNoise table is stale: run .venv/bin/python -m tests.peers.report --readme"
    )
