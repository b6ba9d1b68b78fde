"""Honest answers in the notebook client, against a real server: contribution bounds as options of
`query` and `explain` (malformed ones refused before anything is sent), each cell's interval as
the server computed it, what was left out said in plain words in English and Chinese, a warning
before a query whose groups may not appear, and a release without groups that says why."""

from __future__ import annotations

import math

import pytest

from sandbox.client import Sandbox, parse_contribution
from sandbox.errors import InvalidParameter
from tests.client.test_html import Page
from tests.support.live import LiveSandbox, free_port

JOIN = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m ON r.person_id = m.person_id "
        "GROUP BY r.district")
# Each person's total cost to the yuan: private keys, every group far below the threshold.
RARE = ("SELECT FLOOR(total) AS total, COUNT(*) AS people FROM (SELECT person_id, SUM(cost) AS total "
        "FROM medical_visits GROUP BY person_id) t GROUP BY 1")


def test_bounds_are_options_of_explain_and_query(developer: Sandbox) -> None:
    preview = developer.explain(JOIN, epsilon=0.2, max_rows={"medical_visits": 10})
    choices = preview.choices()
    assert set(choices["dataset"]) == {"residents", "medical_visits"}
    visits = choices.filter(choices["dataset"] == "medical_visits")
    assert visits.filter(visits["chosen"])["max_rows"].to_list() == [10]
    widths = dict(zip(visits["max_rows"], visits["count_half_width"], strict=True))
    left = dict(zip(visits["max_rows"], visits["rows_left_out"], strict=True))
    # less noise, more left out (estimated from DP statistics: small differences may not show)
    assert widths[1] < widths[10] < widths[40] and left[1] >= left[10] >= left[40] and left[1] > left[40]
    assert any("at most 10 joined rows" in text for _, text in preview.messages())

    release = developer.query(JOIN, epsilon=0.2, max_rows={"medical_visits": 10}, max_groups=1,
                              clamp={"residents.monthly_income": (0, 50000)})
    assert release.contribution == {"max_rows": {"medical_visits": 10}, "max_groups": 1,
                                    "clamp": {"residents.monthly_income": [0, 50000]}}
    clamped = developer.explain("SELECT district, AVG(monthly_income) AS income FROM residents GROUP BY district",
                                epsilon=0.2, clamp={"residents.monthly_income": (0, 50000)})
    ceiling = developer.explain("SELECT district, AVG(monthly_income) AS income FROM residents GROUP BY district",
                                epsilon=0.2)
    def sum_sensitivity(plan) -> float:  # in the measure's own unit: grid steps times the step
        (total,) = [p for p in plan.raw["primitives"] if p["kind"] == "sum"]
        return total["sensitivity"] * total["step"]

    assert sum_sensitivity(clamped) == sum_sensitivity(ceiling) / 4  # [0, 50000] inside [0, 200000]


@pytest.mark.parametrize("bounds,says", [
    ({"max_rows": 10}, "max_rows takes the rows per unit by dataset, e.g. max_rows={\"medical_visits\": 10}"),
    ({"max_rows": {"medical_visits": 0}}, "max_rows for medical_visits must be a whole number of at least 1"),
    ({"max_rows": {"medical_visits": True}}, "(got True)"),
    ({"max_groups": 2.5}, "max_groups must be a whole number of at least 1 (got 2.5)"),
    ({"clamp": {"residents.monthly_income": (50000, 0)}}, "low below high"),
    ({"clamp": {"monthly_income": (0, 50000)}}, "under a dataset.column name"),
    ({"clamp": [0, 50000]}, "clamp takes low and high bounds by dataset.column"),
])
def test_malformed_bounds_are_one_line_and_nothing_is_sent(bounds: dict, says: str) -> None:
    nowhere = Sandbox(f"http://127.0.0.1:{free_port()}", "t", agreement="a", progress=False, lang="en")
    for call in (nowhere.query, nowhere.explain):
        with pytest.raises(InvalidParameter) as caught:  # not SandboxUnreachable: refused before sending
            call(JOIN, epsilon=0.2, **bounds)
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_command_line_forms() -> None:
    assert parse_contribution(["medical_visits=10", "residents=1,social_insurance=12"], 6,
                              ["residents.monthly_income=0,50000", "medical_visits.cost=0,2.5e4"]) == {
        "max_rows": {"medical_visits": 10, "residents": 1, "social_insurance": 12}, "max_groups": 6,
        "clamp": {"residents.monthly_income": (0, 50000), "medical_visits.cost": (0, 25000)}}
    assert parse_contribution() == {"max_rows": None, "max_groups": None, "clamp": None}
    for rows, groups, clamp, says in [
        (["medical_visits:10"], None, [], "--max-rows takes DATASET=ROWS"),
        (["medical_visits=ten"], None, [], "(got 'medical_visits=ten')"),
        ([], 0, [], "--max-groups takes a whole number of at least 1, e.g. --max-groups 6 (got 0)"),
        ([], None, ["residents.monthly_income=0"], "--clamp takes DATASET.COLUMN=LOW,HIGH"),
        ([], None, ["monthly_income=0,5"], "--clamp takes DATASET.COLUMN=LOW,HIGH"),
        ([], None, ["residents.monthly_income=5,0"], "with LOW below HIGH"),
        ([], None, ["residents.monthly_income=0,inf"], "--clamp takes"),
    ]:
        with pytest.raises(InvalidParameter, match="e.g.") as caught:
            parse_contribution(rows, groups, clamp, lang="en")
        assert says in str(caught.value)
    with pytest.raises(InvalidParameter) as caught:
        parse_contribution(["medical_visits:10"], lang="zh-CN")
    assert str(caught.value).startswith("--max-rows 的格式是 数据集=行数")


def test_cells_show_the_servers_interval_and_what_was_left_out(developer: Sandbox, live: LiveSandbox,
                                                                 agreement_id: str) -> None:
    release = developer.query(JOIN, epsilon=0.3, max_rows={"medical_visits": 1})  # most visits left out
    frame = release.to_polars(intervals=True)
    for row, lower, upper, (_, (value, interval)) in zip(release.rows, release.lower, release.upper,
                                                          release.parts(), strict=True):
        assert lower[1] <= row[1] <= upper[1]
        assert upper[1] - row[1] > row[1] - lower[1]  # what was left out widens the interval upwards
        low, high = (float(end.replace(",", "")) for end in interval.strip("[]").split(", "))
        assert low <= lower[1] and high >= upper[1]  # shown rounded outwards: it contains the released one
        assert abs(float(value.replace(",", "")) - row[1]) <= (high - low) / 20  # at the interval's precision
    assert frame["visits_lo"].to_list() == [r[1] for r in release.lower]
    # (the DP statistics behind the estimates are noisy: on a small city they may also see a little
    # of residents left out, so only medical_visits's warning is looked for)
    warnings = [text for warning, text in release.messages() if warning and "of medical_visits's rows" in text]
    assert len(warnings) == 1, release.messages()
    warning = warnings[0]
    assert warning.startswith("about ") and "of medical_visits's rows are left out by keeping at most 1 per person_id"\
        in warning and "ask for up to 40 (the ceiling)" in warning
    page = Page(release._repr_html_())
    assert f"⚠ {warning}" in page.by_class["sandbox-warning"]
    assert all(text.startswith("[") for text in page.by_class["pm"])

    chinese = Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, progress=False, lang="zh-CN")
    again = chinese.query(JOIN, epsilon=0.3, max_rows={"medical_visits": 1})  # the same question: reused
    assert again.reused and again.cells() == release.cells()  # numbers written alike in both
    (said,) = [text for warning, text in again.messages() if warning and "medical_visits 约有" in text]
    assert said.startswith("每个 person_id 最多保留 1 行，medical_visits 约有") and "区间已计入这一偏差" in said


def test_open_interval_ends_are_shown_unbounded(developer: Sandbox) -> None:
    release = developer.query("SELECT department, SUM(cost) / COUNT(*) AS mean_cost FROM medical_visits "
                              "WHERE cost > 20000 GROUP BY department", epsilon=0.1)
    for i, row in enumerate(release.parts()):
        if row[1] is None:  # suppressed
            assert release.suppressed[i]
            continue
        lower, upper = release.lower[i][1], release.upper[i][1]
        assert row[1][1].startswith("(−∞") == (lower is None) and row[1][1].endswith("∞)") == (upper is None)
        frame = release.to_polars(intervals=True)
        assert frame["mean_cost_lo"][i] == (-math.inf if lower is None else lower)
    if any(None in (lo[1], hi[1]) for lo, hi, s in zip(release.lower, release.upper, release.suppressed,
                                                        strict=True) if not s):
        assert any("have no finite interval (a missing end means unbounded)" in t for _, t in release.messages())


def test_a_query_over_private_keys_warns_before_it_spends(live: LiveSandbox, agreement_id: str) -> None:
    seen: list[tuple[str, float]] = []
    sb = Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, progress=False, lang="en",
                 on_warning=lambda text: seen.append((text, sb.budget().spent_epsilon)))
    spent = sb.budget().spent_epsilon
    release = sb.query(RARE, epsilon=0.3)
    ((text, spent_then),) = seen
    assert spent_then == pytest.approx(spent)  # said before the query spent anything ...
    assert release.charge_epsilon == pytest.approx(0.3)  # ... and then it ran
    assert text.startswith("Before this query spends ε 0.3: the group keys are private: a group needs about ")
    assert " rows (a noisy count) to be released" in text

    # no groups came through: the release says why, in every rendering
    assert release.rows == [] and "no rows released" in release.footer()
    warnings = [text for warning, text in release.messages() if warning]
    assert any(t.startswith("no group reached the release threshold for private keys") for t in warnings)
    assert "no group reached the release threshold" in "".join(Page(release._repr_html_()).by_class[
        "sandbox-warning"])

    sb.query("SELECT district, COUNT(*) AS n FROM residents GROUP BY district", epsilon=0.1)
    sb.query("SELECT COUNT(*) AS n FROM residents", epsilon=0.1)
    assert len(seen) == 1  # public keys, or no groups: nothing to warn about
    sb.query(RARE.replace("FLOOR(total)", "FLOOR(total) + 0"), epsilon=0.1, warn=False)
    assert len(seen) == 1


def test_the_warning_in_chinese_goes_to_stderr(live: LiveSandbox, agreement_id: str, capsys) -> None:
    chinese = Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, progress=False, lang="zh-CN")
    release = chinese.query(RARE.replace("FLOOR(total)", "FLOOR(total) + 1"), epsilon=0.2)
    err = capsys.readouterr().err
    assert err.startswith("⚠ 本查询花费 ε 0.2 之前请注意：分组键是私有的：一个分组需要约 ")
    assert "行（加噪计数）才会被发布" in err
    assert "没有发布任何行" in release.footer()
    assert any(text.startswith("没有分组达到私有键的发布阈值") for warning, text in release.messages() if warning)
