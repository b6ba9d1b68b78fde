"""Data stewards in a real browser (Debian's Chromium through Playwright, a real server): a fused
request over two departments' datasets stays inactive until the operator and both stewards have
approved it in the console; one steward works in Chinese; a suspension on the part's page stops
the developer's next job at once; the auditor's log shows every step."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from sandbox import accounts, agreements
from sandbox.catalog import Catalog
from sandbox.store import Store
from tests.support.server import Server, running_server
from tests.web.test_browser import browser, shot, sign_in  # noqa: F401  (fixture)

FUSED = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m "
         "ON r.person_id = m.person_id GROUP BY r.district")


@pytest.fixture(scope="module")
def live(demo_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    database = tmp_path_factory.mktemp("stewards-live") / "sandbox.db"
    store = Store(database)
    owners = demo_catalog.owners()
    with store.transaction() as conn:
        admin, _ = accounts.create_user(conn, "Administrator", "admin")
        operator, operator_token = accounts.create_user(conn, "Chen Jing", "operator", by=admin)
        _, auditor_token = accounts.create_user(conn, "Huang Min", "auditor", by=admin)
        _, police_token = accounts.create_user(conn, "Wu Lei", "steward", by=admin, organisation=owners["residents"])
        _, health_token = accounts.create_user(conn, "Xu Fang", "steward", by=admin,
                                               organisation=owners["medical_visits"])
        _, lin, lin_token = accounts.create_licence(
            conn, operator, name="Lin Wei", organisation="Xiamen University, School of Public Health",
            licence_number="XM-2026-0042", valid_from="2026-01-01", valid_to="2031-01-01")
        fused = agreements.request(
            conn, lin, purpose="Health-care use by district", legal_basis="Public health research, ethics XMU-117",
            datasets={"residents": None, "medical_visits": None}, valid_from="2026-01-01", valid_to="2030-01-01",
            epsilon=3.0, delta=1e-6, known=demo_catalog.scopes(), owners=owners)
    store.close()
    tokens = {"operator": operator_token, "auditor": auditor_token, "police": police_token, "health": health_token,
              "developer": lin_token, "agreement": fused["id"]}
    with running_server(demo_catalog.data_dir, database_url=str(database), workers=1) as server:
        yield server, tokens


def query(server: Server, tokens: dict[str, str], epsilon: float) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60,
                      headers={"Authorization": f"Bearer {tokens['developer']}"}) as developer:
        return developer.post("/jobs", json={"sql": FUSED, "epsilon": epsilon, "wait": 30,
                                             "agreement_id": tokens["agreement"]})


def test_two_stewards_and_the_operator_approve_a_fused_request_and_a_suspension_stops_the_next_job(
        live, browser) -> None:  # noqa: F811
    server, tokens = live
    agreement_id = tokens["agreement"]
    contexts = []

    def page(locale: str = "en-GB"):
        context = browser.new_context(base_url=server.url, locale=locale, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    try:
        operator = page()
        sign_in(operator, tokens["operator"], "/console/queue")
        operator.goto(f"/console/agreements/{agreement_id}")
        operator.get_by_role("button", name="Approve").click()
        expect(operator.get_by_role("status")).to_have_text("The agreement was approved.")
        expect(operator.locator("h1 .status")).to_have_text("awaiting")
        assert query(server, tokens, 0.1).status_code == 403
        operator.goto("/console/queue")
        waiting = operator.get_by_role("table", name="Approved, awaiting the data stewards")
        expect(waiting).to_contain_text("medical_visits")
        expect(waiting).to_contain_text("residents")

        police = page()
        sign_in(police, tokens["police"], "/console/stewardship")
        shot(police, "steward-queue")
        police.get_by_role("link", name=re.compile("Review the use of residents")).click()
        police.get_by_label("Note to the developer, the operator and the auditors").fill("district level only")
        police.get_by_role("button", name="Approve").click()
        expect(police.get_by_role("status")).to_have_text("Your part was approved.")
        assert query(server, tokens, 0.1).status_code == 403  # one steward is not enough

        health = page("zh-CN")  # the health commission's steward reads the console in Chinese
        health.goto("/console/signin")
        health.get_by_label("访问令牌").fill(tokens["health"])
        with health.expect_navigation(url="**/console/stewardship"):
            health.keyboard.press("Enter")
        expect(health.get_by_role("heading", level=1)).to_contain_text("数据管理")
        shot(health, "steward-queue-zh")
        health.get_by_role("link", name=re.compile("审查 medical_visits")).click()
        health.get_by_label("该数据集的 ε").fill("1")
        health.get_by_label("计数取整到").fill("20")
        health.get_by_role("button", name="批准").click()
        expect(health.get_by_role("status")).to_have_text("您负责的部分已批准。")
        expect(health.locator("dl.facts")).to_contain_text("计数取整到 20")
        shot(health, "steward-part-zh")

        released = query(server, tokens, 0.1)
        assert released.status_code == 201 and released.json()["status"] == "released", released.text
        result = released.json()["result"]
        visits = [row[result["columns"].index("visits")] for row in result["rows"]]
        assert all(v is None or v % 20 == 0 for v in visits), "the health steward's rounding binds the query"

        health.get_by_label("原因", exact=True).fill("病历数据更正中")
        health.get_by_role("button", name="暂停").click()
        expect(health.get_by_role("status")).to_have_text("该数据集的使用已暂停。")
        refused = query(server, tokens, 0.2)
        assert refused.status_code == 403 and "病历数据更正中" in refused.json()["error"]["message"]

        operator.goto(f"/console/agreements/{agreement_id}")
        expect(operator.locator("h1 .status")).to_have_text("active")
        expect(operator.get_by_role("table", name="Data stewards")).to_contain_text("suspended")
        expect(operator.get_by_role("table", name="Data stewards")).to_contain_text("round counts to 20")

        auditor = page()
        sign_in(auditor, tokens["auditor"], "/console/audit")
        auditor.goto(f"/console/audit?agreement_id={agreement_id}")
        log = auditor.locator("main table").first
        for action in ("agreement.approved", "dataset.approved", "agreement.activated", "dataset.suspended"):
            expect(log).to_contain_text(action)
        shot(auditor, "auditor-stewards")

        unlabelled = "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]" \
                     ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"
        for path in ("/console/stewardship", f"/console/stewardship/{agreement_id}/residents", "/console/catalog"):
            police.goto(path)
            assert police.evaluate(unlabelled) == [], path
            assert police.locator("main h1").count() == 1, path
        police.goto("/console/queue")
        expect(police.locator("main")).to_contain_text("steward")  # an operator page refuses a steward

        public = page()  # anyone, not signed in: the register lists the agreement, not its developer
        public.goto("/register")
        expect(public.get_by_role("heading", level=1)).to_have_text("Public register of data-use agreements")
        row = public.locator("tbody tr", has_text="Health-care use by district")
        expect(row).to_contain_text("Xiamen University, School of Public Health")
        expect(row).to_contain_text("medical_visits, residents")
        expect(public.locator("main")).not_to_contain_text("Lin Wei")
        shot(public, "register")
        public_zh = page("zh-CN")
        public_zh.goto("/register")
        expect(public_zh.get_by_role("heading", level=1)).to_have_text("数据使用协议公开登记簿")
        shot(public_zh, "register-zh")
    finally:
        for context in contexts:
            context.close()
