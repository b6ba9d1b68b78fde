"""The developer's pages: jobs a page at a time, and a released job as its table (values with
their intervals at the precision the interval supports, group keys as written)."""

from __future__ import annotations

import json
import re
import uuid

from sqlalchemy import func, insert, select

from sandbox import notes
from sandbox.store import now
from sandbox.store.schema import jobs


def released_job(console, result: dict) -> str:
    job_id = str(uuid.uuid4())
    with console.store.transaction() as conn:
        conn.execute(insert(jobs).values(
            id=job_id, developer_id=console.people.users["developer"].id, agreement_id=console.people.active_id,
            dataset="enterprises", sql="SELECT founded_year, COUNT(*) AS n, AVG(revenue) AS revenue FROM enterprises "
            "GROUP BY founded_year", epsilon=0.5, delta=0.0, status="released", created_at=now(), finished_at=now(),
            compiled_sql="/* bounded */", error=None, result=json.dumps(result), result_hash="ab" * 32,
            charge_epsilon=500_000_000, charge_delta=0, data_touched=True))
    return job_id


RESULT = {"columns": ["founded_year", "n", "revenue"], "epsilon": 0.5, "delta": 0.0,
          "rows": [[1980, 12.0, 109_524_123.4], [1981, None, None]],
          "half_widths": [[None, 6.4, 3_712_345.0], [None, None, None]], "suppressed": [False, True],
          "columns_noise": [{"name": "founded_year", "kind": "key"},
                            {"name": "n", "kind": "aggregate", "function": "count"},
                            {"name": "revenue", "kind": "aggregate", "function": "avg"}],
          "notes": ["counts below 3 are suppressed"]}


def cells(html: str) -> list[list[str]]:
    body = re.search(r'<table class="release">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_a_released_job_is_shown_as_its_table(fresh_console) -> None:
    job_id = released_job(fresh_console, RESULT)
    client = fresh_console.client("developer")
    listing = client.get("/console/me").text
    assert f'href="/console/me/jobs/{job_id}">2 rows</a>' in listing
    page = client.get(f"/console/me/jobs/{job_id}")
    assert page.status_code == 200
    assert cells(page.text) == [["1980", "12 ± 6.4", "109,500,000 ± 3,700,000"], ["1981", "suppressed", "suppressed"]]
    assert "counts below 3 are suppressed" in page.text
    chinese = client.get(f"/console/me/jobs/{job_id}", headers={"Accept-Language": "zh-CN"})
    assert cells(chinese.text)[1] == ["1981", "已抑制", "已抑制"] and "发布结果" in chinese.text


LEFT_OUT = notes.note("rows_left_out.below_ceiling", share=0.46, dataset="medical_visits", rows=8, unit="person_id",
                      ceiling=40)
BOUNDED = notes.note("rows", unit="person_id", rows=8)
HONEST = RESULT | {
    "rows": [[1980, 12.0, 109_524_123.4], [1981, None, None], [1982, 30.0, 0.51]],
    "half_widths": [[None, 6.4, 3_712_345.0], [None, None, None], [None, 6.4, None]],
    "lower": [[None, 5.6, 105_811_778.4], [None, None, None], [None, 23.6, 0.2]],
    "upper": [[None, 31.9, 113_236_468.4], [None, None, None], [None, 56.1, None]],
    "suppressed": [False, True, False],
    "notes": [str(BOUNDED), str(LEFT_OUT)], "note_details": [BOUNDED.detail(), LEFT_OUT.detail()]}


def test_a_release_shows_each_interval_as_the_server_sent_it_and_what_was_left_out(fresh_console) -> None:
    job_id = released_job(fresh_console, HONEST)
    client = fresh_console.client("developer")
    page = client.get(f"/console/me/jobs/{job_id}").text
    assert cells(page) == [["1980", "12 [5, 32]", "109,500,000 ± 3,700,000"],  # bias widens the count upwards
                           ["1981", "suppressed", "suppressed"],
                           ["1982", "30 [23, 57]", "0.51 [0.20, ∞)"]]  # an open end is unbounded
    warning = re.findall(r'<p class="warning">(.*?)</p>', page, re.S)
    assert [w.replace("&#39;", "'") for w in warning] == [f"⚠ {LEFT_OUT}"]  # the warning first, then the rest
    assert f'<p class="hint">{BOUNDED}</p>' in page and "[lower, upper] when it is not" in page
    chinese = client.get(f"/console/me/jobs/{job_id}", headers={"Accept-Language": "zh-CN"}).text
    (said,) = re.findall(r'<p class="warning">(.*?)</p>', chinese, re.S)
    assert said == ("⚠ 每个 person_id 最多保留 8 行，medical_visits 约有 46% 的行因此被舍去：计数和求和会偏低，"
                    "区间已计入这一偏差；最多可要求 40（上限）以保留更多")
    assert "每个 person_id 最多贡献 8 行，由带密钥的哈希选取" in chinese


def test_a_release_without_rows_says_why(fresh_console) -> None:
    """Failed before: an empty release is falsy (no rows), and the page showed no release at all."""
    why = notes.note("no_groups.rows", threshold=53, unit="person_id")
    empty = RESULT | {"rows": [], "half_widths": [], "lower": [], "upper": [], "suppressed": [],
                      "notes": [str(why)], "note_details": [why.detail()]}
    page = fresh_console.client("developer").get(f"/console/me/jobs/{released_job(fresh_console, empty)}").text
    assert cells(page) == [["No rows were released."]]
    assert "⚠ no group reached the release threshold for private keys: a group needs about 53 rows" in page


def test_another_developers_job_is_not_found(fresh_console) -> None:
    job_id = released_job(fresh_console, RESULT)
    other = fresh_console.client("developer2").get(f"/console/me/jobs/{job_id}")
    assert other.status_code == 404


def test_jobs_come_a_page_at_a_time(console_factory) -> None:
    console = console_factory(busy=140)  # about 55 jobs of the seeded developer
    with console.store.read() as conn:
        total = conn.execute(select(func.count()).select_from(jobs)).scalar_one()
    assert total > 50
    client = console.client("developer")
    first = client.get("/console/me").text
    assert "Jobs 1–50, newest first" in first and 'href="/console/me?offset=50" rel="next"' in first
    assert 'rel="prev"' not in first
    second = client.get("/console/me?offset=50").text
    assert f"Jobs 51–{total}, newest first" in second
    assert 'href="/console/me?offset=0" rel="prev"' in second and 'rel="next"' not in second
    rows = re.search(r'<table class="jobs">.*?<tbody>(.*?)</tbody>', second, re.S).group(1).count("<tr>")
    assert rows == total - 50
