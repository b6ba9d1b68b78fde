"""Auditor pages: filters and pages over the log, one event in full, verify, exports, charts."""

from __future__ import annotations

import csv
import io
import json
import re

import pyarrow.parquet as pq
import pytest
from sqlalchemy import update

from sandbox import agreements, audit, jobs, ledger
from sandbox.store import Store
from sandbox.store.schema import audit as audit_table
from tests.web import seed
from tests.web.conftest import known_columns


@pytest.fixture(scope="module")
def busy(console_factory):
    return console_factory(busy=600)


def _rows(page: str) -> list[tuple[int, str]]:
    return [(int(seq), action) for seq, action in re.findall(r'aria-label="Event (\d+): ([a-z._]+)"', page)]


def test_the_log_pages_newest_first(busy) -> None:
    auditor = busy.client("auditor")
    first = auditor.get("/console/audit").text
    rows = _rows(first)
    assert len(rows) == 50 and rows[0][0] > rows[-1][0]
    assert re.search(r"Events 1–50 of (\d{3}), newest first", first)
    second = auditor.get("/console/audit?offset=50").text
    assert _rows(second)[0][0] == rows[-1][0] - 1 and "← Newer" in second and "Older →" in second


def test_filters_combine_and_pages_keep_them(busy) -> None:
    auditor = busy.client("auditor")
    developer_id = busy.people.users["developer"].id
    page = auditor.get(f"/console/audit?action=job.rejected&actor={developer_id}&outcome=rejected").text
    rows = _rows(page)
    assert rows and {action for _, action in rows} == {"job.rejected"}
    assert f'<option value="{developer_id}" selected>Lin Wei (developer)</option>' in page
    assert "offset=50" in page and "action=job.rejected" in re.search(r'href="([^"]*offset=50[^"]*)"', page).group(1)
    none = auditor.get("/console/audit?action=job.rejected&until=2000-01-01").text
    assert "No events match." in none
    by_agreement = _rows(auditor.get(f"/console/audit?agreement_id={busy.people.pending_id}").text)
    assert [a for _, a in by_agreement] == ["agreement.requested"]


def test_an_event_shows_the_query_its_charge_accuracy_and_result_hash(busy) -> None:
    auditor = busy.client("auditor")
    seq = next(s for s, a in _rows(auditor.get("/console/audit?action=job.released").text))
    page = auditor.get(f"/console/audit/events/{seq}").text
    for expected in ("SQL as submitted", "SQL as compiled", "/* bounded */ SELECT", "Charge", "ε 0.0002",
                     "Result hash", "± half-width", "11.98", "All events of this job", "job.submitted",
                     "Previous hash"):
        assert expected in page, expected
    assert auditor.get("/console/audit/events/999999").status_code == 404


def test_verify_shows_a_green_badge_on_an_intact_chain(busy) -> None:
    page = busy.client("auditor").get("/console/audit?verify=1").text
    assert 'class="badge ok"' in page and "Chain verified" in page


def test_verify_names_the_event_that_was_changed(fresh_console) -> None:
    seed.busy_log(fresh_console.store, fresh_console.people, 120)
    with fresh_console.store.transaction() as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 77).values(details='{"sql":"SELECT 1"}'))
    page = fresh_console.client("auditor").get("/console/audit?verify=1").text
    assert 'class="badge bad"' in page and 'href="/console/audit/events/77">event 77</a>' in page
    assert "does not match its hash" in page


def test_csv_and_parquet_exports_follow_the_filters_and_are_audited(busy) -> None:
    auditor = busy.client("auditor")
    response = auditor.get("/console/audit/export?format=csv&action=agreement.approved")
    assert response.headers["content-disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["action"] for r in rows] == ["agreement.approved"]
    assert json.loads(rows[0]["details"])["epsilon"] == 2.0
    table = pq.read_table(io.BytesIO(auditor.get("/console/audit/export?format=parquet&outcome=rejected").content))
    assert table.num_rows > 0 and set(table.column("outcome").to_pylist()) == {"rejected"}
    log = auditor.get("/console/audit?action=audit.exported").text
    assert len(_rows(log)) >= 2
    assert auditor.get("/console/audit/export?format=xlsx").status_code == 422


def test_charts_draw_spending_and_rejection_reasons_as_inline_svg(busy) -> None:
    page = busy.client("auditor").get("/console/audit/charts").text
    assert page.count("<svg") == 2 and "<title>Privacy budget spent per agreement over time</title>" in page
    assert "no identifiers" in page and "allowed nodes" in page and "budget exhausted" in page
    assert re.search(r'<path d="M[\d.,VH]+" fill="none"', page)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_chart_queries_on_both_stores(backend, request, demo_catalog, tmp_path) -> None:
    database = str(tmp_path / "s.db") if backend == "sqlite" else request.getfixturevalue("fresh_postgres_db")
    store = Store(database)
    try:
        people = seed.people(store, known_columns(demo_catalog))
        seed.busy_log(store, people, 200)
        reasons = dict(jobs.rejections(store))
        spending = ledger.spending(store)
        agreement = agreements.get(store, people.users["auditor"], people.active_id)
        assert audit.verify(store).ok
        assert reasons["no identifiers"] > 0 and reasons["budget exhausted"] > 0 and sum(reasons.values()) > 15
        ((about, points),) = spending
        assert about["id"] == people.active_id
        assert points[-1][1] == pytest.approx(agreement["spent_epsilon"]) == pytest.approx(about["spent"])
    finally:
        store.close()
