"""SmartNoise SQL's own PUMS test queries (tests/peers/smartnoise_pums.yaml): each is compiled on
our dataset names and must do what its entry expects. `accepted` queries must also run as the
worker runs them, every released cell with both ends of its interval; `refused` ones must be
refused by the recorded rule. A feature that makes a refused query pass, or a change that makes
an accepted one fail, fails here until the entry is updated (`python -m tests.peers.report
--check` lists every stale entry at once)."""

from __future__ import annotations

import pytest

from tests.peers.report import DATA, README, WHY_KINDS, load, outcome, table
from tests.support.intervals import assert_released_cells_have_intervals

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
    assert_released_cells_have_intervals(sql, demo_catalog)


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
