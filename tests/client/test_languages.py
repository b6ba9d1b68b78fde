"""The client in Chinese and English: Sandbox(lang=...) or SANDBOX_LANG choose the language of
everything the client renders (tables, footers, explanations, its own errors), and the kind of a
server's refusal is named in Chinese in front of the server's message."""

from __future__ import annotations

import pytest

from sandbox.client import NotConfigured, Sandbox, SandboxUnreachable
from sandbox.errors import SQLRejected
from tests.client.test_html import Page
from tests.support.live import LiveSandbox, free_port

SQL = "SELECT founded_year, COUNT(*) AS n FROM enterprises GROUP BY founded_year ORDER BY founded_year LIMIT 3"


@pytest.fixture()
def chinese(live: LiveSandbox, agreement_id: str) -> Sandbox:
    return Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, progress=False, lang="zh-CN")


def test_a_release_in_chinese_with_keys_as_keys(chinese) -> None:
    release = chinese.query("SELECT district, COUNT(*) AS people FROM residents GROUP BY district", epsilon=0.2)
    page = Page(release._repr_html_())
    footer = page.by_class["sandbox-footer"][0]
    assert footer.startswith("扣除 ε 0.2") and "剩余预算 ε" in footer and "95% 区间涵盖噪声和估计的偏差" in footer
    assert all((" ± " in row[1][1] or " [" in row[1][1]) and "," not in row[0][1] for row in page.rows)


def test_years_are_keys_not_numbers(live, agreement_id) -> None:
    english = Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, progress=False, lang="en")
    mock = english.mock_query(SQL, rows=200)
    years = [row[0] for row in mock.cells()]
    assert len(years) == 3 and all(year.isdigit() and len(year) == 4 for year in years), years  # not 1,980
    assert mock.keys == ["founded_year"]


def test_an_explanation_and_a_dataset_in_chinese(chinese) -> None:
    explained = Page(chinese.explain("SELECT hospital, COUNT(*) AS n FROM medical_visits GROUP BY hospital",
                                     epsilon=0.4)._repr_html_())
    assert explained.headers == ["列", "聚合", "预期 95% 区间", "数据集", "max_rows（每单元行数）",
                                 "COUNT 的预期 95% 区间", "被舍去的行（估计）"]
    assert "此查询将消耗 ε 0.4" in explained.by_class["sandbox-explain"][0]
    described = chinese.describe("residents")
    assert described.title == "居民户籍登记（演示）" and "隐私单元 person_id" in described._repr_html_()


def test_a_refusal_is_named_in_chinese_before_the_servers_message(chinese) -> None:
    with pytest.raises(SQLRejected) as caught:
        chinese.query("SELECT district, monthly_income FROM residents", epsilon=0.1)
    first = caught.value._render_traceback_()[0]
    assert first.startswith("\x1b[1;31mSQLRejected (查询被拒绝)\x1b[0m: ") and "line 1, column 8" in first


def test_the_clients_own_errors_in_chinese(monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_LANG", "zh-CN")
    monkeypatch.delenv("SANDBOX_URL", raising=False)
    with pytest.raises(NotConfigured) as caught:
        Sandbox(token="t")
    assert str(caught.value).startswith("没有沙箱地址。")
    with pytest.raises(SandboxUnreachable) as caught:
        Sandbox(f"http://127.0.0.1:{free_port()}", "t").me()
    assert str(caught.value).startswith("无法连接 http://127.0.0.1:") and "SANDBOX_URL" in str(caught.value)
    assert caught.value._render_traceback_()[0].startswith("\x1b[1;31mSandboxUnreachable (沙箱没有响应)")


def test_english_stays_the_default(monkeypatch) -> None:
    for name in ("SANDBOX_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert Sandbox("http://127.0.0.1:1", "t").lang == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert Sandbox("http://127.0.0.1:1", "t").lang == "zh_CN"
    assert Sandbox("http://127.0.0.1:1", "t", lang="en").lang == "en"
