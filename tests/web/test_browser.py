"""The console in a real browser: Debian's Chromium driven by Playwright against a real server.

An operator approves a request with less budget than asked, then amends it (a top-up and a later
end, with a reason) and finds it in the history of decided agreements; the developer's page shows
the new budget; an auditor finds the approval in the log by filter, opens it, verifies the chain
and downloads the CSV export. The same in Chinese (zh-CN). Screenshots of the main pages in both
languages go to tests/output/screenshots/.

Chromium comes from apt (`make sysdeps`); Playwright never downloads a browser here.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from sandbox.catalog import Catalog
from sandbox.store import Store
from tests.support.server import Server, running_server
from tests.web import seed
from tests.web.conftest import known_columns

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"

@pytest.fixture(scope="module")
def live(demo_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, seed.People]]:
    """A real server on the demo catalog with the seeded people, and a few real jobs: two released,
    two refused (SQL that names an identifier, and an epsilon above the agreement's cap)."""
    database = tmp_path_factory.mktemp("live") / "sandbox.db"
    store = Store(database)
    people = seed.people(store, known_columns(demo_catalog))
    store.close()
    with running_server(demo_catalog.data_dir, database_url=str(database), workers=1) as server:
        headers = {"Authorization": f"Bearer {people.tokens['developer']}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as developer:
            for sql, epsilon, status in (
                ("SELECT district, COUNT(*), AVG(monthly_income) FROM residents GROUP BY district", 0.5, 201),
                ("SELECT FLOOR(age / 10) * 10 AS decade, COUNT(*) FROM residents GROUP BY decade", 0.25, 201),
                ("SELECT person_id, monthly_income FROM residents", 0.1, 400),
                ("SELECT household_size, COUNT(*) FROM residents GROUP BY household_size", 0.8, 403),
            ):
                response = developer.post("/jobs", json={"sql": sql, "epsilon": epsilon, "wait": 30,
                                                         "agreement_id": people.active_id})
                assert response.status_code == status, response.text
                assert status != 201 or response.json()["status"] == "released", response.text
        yield server, people


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make sysdeps` (apt-get install chromium).")
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser, live) -> Iterator:
    """`new_page()` -> a page in its own browser context (own cookies), closed after the test.
    Every request any page makes is checked afterwards: none may leave the sandbox server."""
    server, _ = live
    contexts, requested = [], []

    def make():
        context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860},
                                      accept_downloads=True)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        return page

    yield make
    for context in contexts:
        context.close()
    strangers = [url for url in requested if not url.startswith(server.url) and not url.startswith("data:")]
    assert not strangers, f"the console fetched from outside the sandbox: {strangers}"


def sign_in(page, token: str, lands_on: str) -> None:
    """By keyboard, the way a person would: the token field has focus on arrival."""
    page.bring_to_front()  # the focused tab, so that autofocus applies
    page.goto("/console/signin")
    expect(page.get_by_label("Access token")).to_be_focused()
    page.keyboard.type(token)
    with page.expect_navigation(url=f"**{lands_on}"):
        page.keyboard.press("Enter")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_approve_then_developer_sees_budget_then_auditor_finds_verifies_exports(live, new_page) -> None:
    server, pp = live

    operator = new_page()
    sign_in(operator, pp.tokens["operator"], "/console/queue")
    shot(operator, "operator-queue")
    operator.get_by_role("link", name=re.compile("Review the request of Lin Wei")).click()
    expect(operator.get_by_role("heading", level=1)).to_contain_text("Health-care use by age and district")
    operator.get_by_label("Total ε").fill("2.5")
    operator.get_by_label("Per-query ε cap").fill("0.5")
    operator.get_by_label("Suppress counts below").fill("10")
    operator.get_by_label("Round counts to").fill("5")
    operator.get_by_label("Note to the developer and the auditors").fill(
        "Start with 2.5; ask again after the first results")
    shot(operator, "operator")
    operator.get_by_role("button", name="Approve").click()
    expect(operator.get_by_role("status")).to_have_text("The agreement was approved.")
    expect(operator.locator("h1 .status")).to_have_text("active")

    # The first results are in: a top-up and a later end, with a reason; then the history.
    operator.get_by_label("Add ε").fill("1")
    operator.get_by_label("Valid until").fill("2029-12-31")
    operator.get_by_label("Reason (the developer and the auditors will read it)").fill(
        "First results reviewed: one more ε and half a year")
    shot(operator, "operator-amend")
    operator.get_by_role("button", name="Amend the agreement").click()
    expect(operator.get_by_role("status")).to_have_text("The agreement was amended.")
    changes = operator.get_by_role("table", name="Decisions and changes")
    expect(changes.locator("tbody tr")).to_have_count(3)  # requested, approved, amended
    expect(changes.locator("tbody tr").last).to_contain_text("budget ε: 2.5 → 3.5")
    expect(changes.locator("tbody tr").last).to_contain_text("valid until: 2029-06-01 → 2029-12-31")
    operator.get_by_role("navigation", name="Console").get_by_role("link", name="Agreements").click()
    operator.get_by_role("searchbox").fill("lin wei")
    operator.get_by_role("button", name="Search").click()
    rows = operator.locator("main table tbody tr")
    expect(rows).to_have_count(2)  # the agreement approved before the test, and this one
    expect(rows.first).to_contain_text("First results reviewed")
    assert operator.evaluate("document.documentElement.scrollWidth") <= 1280, "the history fits a 1280 px window"
    shot(operator, "operator-history")

    developer = new_page()
    sign_in(developer, pp.tokens["developer"], "/console/me")
    card = developer.locator("section.card", has_text="Health-care use by age and district")
    expect(card.locator(".budget")).to_have_text("ε 0 spent of 3.5; 3.5 left")
    expect(card).to_contain_text("(requested 4)")
    expect(developer.locator("section.card", has_text="Household income by district").locator(".budget")) \
        .to_have_text("ε 0.75 spent of 2; 1.25 left")
    expect(developer.get_by_role("table")).to_contain_text("AVG(monthly_income)")
    shot(developer, "developer")

    auditor = new_page()
    sign_in(auditor, pp.tokens["auditor"], "/console/audit")
    auditor.get_by_role("button", name="Verify the chain").click()
    expect(auditor.locator("#verify-badge")).to_have_class(re.compile(r"\bok\b"))
    expect(auditor.locator("#verify-badge")).to_contain_text("Chain verified")
    shot(auditor, "auditor")

    auditor.get_by_label("Action").select_option("agreement.approved")
    auditor.get_by_label("Agreement id").fill(pp.pending_id)
    auditor.get_by_role("button", name="Filter").click()
    links = auditor.get_by_role("link", name=re.compile(r"^Event \d+: agreement.approved$"))
    expect(links).to_have_count(1)
    links.click()
    expect(auditor.get_by_role("heading", level=1)).to_contain_text("agreement.approved")
    details = auditor.locator("pre").last
    expect(details).to_contain_text('"epsilon": 2.5')
    expect(details).to_contain_text('"requested_epsilon": 4.0')
    expect(details).to_contain_text('"round_to": 5')
    auditor.go_back()

    auditor.get_by_role("button", name="Verify the chain").click()
    expect(auditor.locator("#verify-badge")).to_contain_text("Chain verified")
    with auditor.expect_download() as download:
        auditor.get_by_role("link", name="CSV").click()
    with open(download.value.path(), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["action"], r["agreement_id"]) for r in rows] == [("agreement.approved", pp.pending_id)]
    assert '"epsilon":2.5' in rows[0]["details"]

    auditor.get_by_role("link", name="Charts").click()
    expect(auditor.locator("svg.chart")).to_have_count(2)
    shot(auditor, "auditor-charts")
    job = auditor.goto("/console/audit?action=job.released")
    assert job is not None and job.ok
    auditor.get_by_role("link", name=re.compile(r"^Event \d+: job.released$")).first.click()
    expect(auditor.locator("main")).to_contain_text("SQL as compiled")
    shot(auditor, "auditor-event")


def test_a_developer_browser_is_kept_out_of_operator_and_auditor_pages(live, new_page) -> None:
    _, pp = live
    page = new_page()
    sign_in(page, pp.tokens["developer"], "/console/me")
    nav = page.get_by_role("navigation", name="Console").get_by_role("link")
    expect(nav).to_have_text(["My agreements", "Catalog"])
    for path in ("/console/queue", f"/console/agreements/{pp.pending_id}", "/console/licences", "/console/audit",
                 "/console/audit/charts", "/console/audit/export?format=csv"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")


def test_forms_work_from_the_keyboard_in_a_sensible_order(live, new_page) -> None:
    _, pp = live
    page = new_page()
    sign_in(page, pp.tokens["operator"], "/console/queue")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.goto(f"/console/agreements/{pp.other_pending_id}")
    page.locator("#epsilon").focus()
    order = []
    for _ in range(8):
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        page.keyboard.press("Tab")
    assert order == ["epsilon", "delta", "per_query_epsilon", "valid_to", "min_count", "round_to", "approve-reason",
                     "Approve"]


def test_every_form_control_has_a_label(live, new_page) -> None:
    _, pp = live
    unlabelled = "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]" \
                 ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"
    for role, paths in (("operator", ["/console/queue", f"/console/agreements/{pp.other_pending_id}",
                                      f"/console/agreements/{pp.active_id}", "/console/agreements",
                                      "/console/licences", "/console/catalog"]),
                        ("auditor", ["/console/audit", "/console/audit/events/1", "/console/audit/charts",
                                     "/console/agreements", f"/console/agreements/{pp.active_id}"]),
                        ("developer", ["/console/me"])):
        page = new_page()
        sign_in(page, pp.tokens[role], paths[0])
        for path in paths:
            page.goto(path)
            assert page.evaluate(unlabelled) == [], path
            assert page.locator("main h1").count() == 1, path


@pytest.mark.parametrize("locale", ["zh-CN"])  # English: the tests above, in a browser that asks for nothing
def test_an_operator_approves_and_amends_and_an_auditor_verifies_in_the_browsers_language(live, browser,
                                                                                          locale) -> None:
    """Chromium set to the reader's language (its Accept-Language): the console answers in it, and
    the header's switch changes it for this browser. Screenshots of both languages go to README."""
    server, pp = live
    zh = locale == "zh-CN"
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {pp.tokens['developer2']}"}) as developer:
        request = developer.post("/agreements", json={
            "purpose": "外来务工人员就医费用分析" if zh else "Outpatient costs of migrant workers",
            "legal_basis": "厦门市公共数据资源管理办法" if zh else "Xiamen public data regulation",
            "datasets": {"medical_visits": None}, "valid_from": "2026-06-01", "valid_to": "2028-06-01",
            "epsilon": 3.0, "delta": 1e-6})
        assert request.status_code == 201, request.text
    agreement_id = request.json()["id"]
    requested: list[str] = []
    context = browser.new_context(base_url=server.url, locale=locale, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    try:
        operator = context.new_page()
        operator.on("request", lambda r: requested.append(r.url))
        sign_in_as(operator, pp.tokens["operator"], "/console/queue", "访问令牌" if zh else "Access token")
        expect(operator.locator("html")).to_have_attribute("lang", locale)
        expect(operator.get_by_role("heading", level=1)).to_have_text("协议申请" if zh else "Agreement requests")
        operator.goto(f"/console/agreements/{agreement_id}")
        operator.get_by_label("ε 总额" if zh else "Total ε").fill("1.5")
        operator.get_by_label("单次查询 ε 上限" if zh else "Per-query ε cap").fill("0.5")
        operator.get_by_label("给开发者和审计人员的说明" if zh else "Note to the developer and the auditors").fill(
            "先批准一半预算" if zh else "Half of it, to start")
        shot(operator, f"operator-{locale}")
        operator.get_by_role("button", name="批准" if zh else "Approve").click()
        expect(operator.get_by_role("status")).to_have_text("协议已批准。" if zh else "The agreement was approved.")
        expect(operator.locator("h1 .status")).to_have_text("生效中" if zh else "active")

        # The operator amends it: a top-up, with a reason; then finds it in the history by its organisation.
        operator.get_by_label("追加 ε" if zh else "Add ε").fill("1")
        operator.get_by_label("理由（开发者和审计人员会看到）" if zh else
                              "Reason (the developer and the auditors will read it)").fill(
            "第二阶段研究获批" if zh else "Second phase approved")
        shot(operator, f"operator-amend-{locale}")
        operator.get_by_role("button", name="修改协议" if zh else "Amend the agreement").click()
        expect(operator.get_by_role("status")).to_have_text("协议已修改。" if zh else "The agreement was amended.")
        changes = operator.get_by_role("table", name="决定与变更" if zh else "Decisions and changes")
        expect(changes.locator("tbody tr").last).to_contain_text("预算 ε: 1.5 → 2.5" if zh else "budget ε: 1.5 → 2.5")
        expect(changes.locator("tbody tr").last).to_contain_text("已修改" if zh else "amended")
        operator.get_by_role("navigation", name="控制台" if zh else "Console").get_by_role(
            "link", name="协议" if zh else "Agreements").click()
        operator.get_by_role("searchbox").fill("Amoy Transport")
        operator.get_by_label("状态" if zh else "Status").select_option("active")
        operator.get_by_role("button", name="搜索" if zh else "Search").click()
        expect(operator.locator("main table tbody tr")).to_have_count(1)
        expect(operator.locator("main table tbody tr")).to_contain_text("第二阶段研究获批" if zh else "Second phase")
        shot(operator, f"history-{locale}")

        auditor = context.new_page()
        auditor.on("request", lambda r: requested.append(r.url))
        context.clear_cookies()
        sign_in_as(auditor, pp.tokens["auditor"], "/console/audit", "访问令牌" if zh else "Access token")
        auditor.get_by_role("button", name="校验哈希链" if zh else "Verify the chain").click()
        expect(auditor.locator("#verify-badge")).to_have_class(re.compile(r"\bok\b"))
        expect(auditor.locator("#verify-badge")).to_contain_text("链校验通过" if zh else "Chain verified")
        shot(auditor, f"auditor-{locale}")

        # The developer opens a released job: its table, values with intervals, keys as written.
        developer = context.new_page()
        developer.on("request", lambda r: requested.append(r.url))
        context.clear_cookies()
        sign_in_as(developer, pp.tokens["developer"], "/console/me", "访问令牌" if zh else "Access token")
        shot(developer, f"developer-{locale}")
        developer.get_by_role("link", name="6 行" if zh else "6 rows").click()
        table = developer.locator("table.release")
        expect(table.locator("tbody tr")).to_have_count(6)
        # a value and its interval: ± when symmetric, [lower, upper] when not
        expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text(
            re.compile(r"^[\d,]+ (± [\d,.]+|\[[\d,.]+, [\d,.]+\])$"))
        shot(developer, f"release-{locale}")

        # The header's switch: the other language for this browser, whatever it asks for.
        other = "English" if zh else "中文"
        developer.goto("/console/me")
        developer.get_by_role("navigation", name="语言" if zh else "Language").get_by_role("link", name=other).click()
        expect(developer.locator("html")).to_have_attribute("lang", "en" if zh else "zh-CN")
        expect(developer.get_by_role("heading", level=1)).to_have_text("My agreements" if zh else "我的协议")
    finally:
        context.close()
    strangers = [url for url in requested if not url.startswith(server.url) and not url.startswith("data:")]
    assert not strangers, strangers


def sign_in_as(page, token: str, lands_on: str, label: str) -> None:
    page.goto("/console/signin")
    page.get_by_label(label).fill(token)
    with page.expect_navigation(url=f"**{lands_on}"):
        page.get_by_label(label).press("Enter")
