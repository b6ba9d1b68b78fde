"""How a release and its notes are shown (no server: releases as the API sends them): each cell's
interval as the server computed it — '±' when symmetric, '[lower, upper]' when not, ∞ for an open
end — suppressed cells, a release without rows that says why, releases stored before intervals had
both ends, and notes in the reader's language with warnings first."""

from __future__ import annotations

from sandbox import notes
from sandbox.client import Release, _messages


def test_an_unknown_note_is_shown_as_the_server_wrote_it() -> None:
    said = _messages(["a newer server's note"], [{"key": "from_a_newer_server"}], "zh_CN")
    assert said == [(False, "a newer server's note")]
    # notes without details (a release stored before notes were data) stay as they are
    assert _messages(["counts below 3 are suppressed"], [], "zh_CN") == [(False, "counts below 3 are suppressed")]


def test_warnings_come_first() -> None:
    texts = ["each person_id contributes at most 10 rows, chosen by a keyed hash",
             "about 6% of medical_visits's rows are left out ..."]
    details = [{"key": "rows", "unit": "person_id", "rows": 10},
               {"key": "rows_left_out", "share": 0.06, "dataset": "medical_visits", "rows": 10, "unit": "person_id"}]
    said = _messages(texts, details, "en")
    assert [warning for warning, _ in said] == [True, False]
    assert said[0][1].startswith("about 6% of medical_visits's rows are left out by keeping at most 10 per person_id")


# -- a release's cells: the interval the server sent, open ends, suppressed cells, no rows -----------------
def _release(rows, lower, upper, half_widths=None, suppressed=None, **extra) -> Release:
    columns = ["district", "n", "avg_income", "ratio"]
    noise = [{"name": "district", "kind": "key"}, {"name": "n", "kind": "aggregate", "function": "count"},
             {"name": "avg_income", "kind": "aggregate", "function": "avg"},
             {"name": "ratio", "kind": "aggregate", "function": None}]
    return Release(columns=columns, rows=rows, half_widths=half_widths or [[None, 6.4, 900.0, None] for _ in rows],
                   suppressed=suppressed or [False] * len(rows), columns_noise=noise, keys=["district"],
                   lower=lower, upper=upper, ends=True, lang="en", **extra)


def test_cells_show_the_servers_interval_symmetric_or_not_and_open_ends() -> None:
    release = _release(
        rows=[["Huli", 120, 5210.0, 0.31], ["Jimei", 3, 4900.0, 2.4], ["Siming", None, None, None]],
        lower=[[None, 113.6, 4310.0, 0.2], [None, 0.0, 0.0, None], [None, None, None, None]],
        upper=[[None, 126.4, 6110.0, 0.45], [None, 9.4, 9000.0, None], [None, None, None, None]],
        suppressed=[False, False, True])
    assert release.cells() == [
        ["Huli", "120 ± 6.4", "5,210 ± 900", "0.31 [0.20, 0.45]"],  # symmetric: ±; a ratio's interval is not
        ["Jimei", "3 [0, 10]", "4,900 [0, 9,000]", "2.4 (−∞, ∞)"],  # clipped at 0, rounded outwards; unbounded
        ["Siming", None, None, None],  # suppressed
    ]
    frame = release.to_polars(intervals=True)
    assert frame["n_lo"].to_list() == [113.6, 0.0, None] and frame["ratio_hi"].to_list()[1] == float("inf")
    assert frame["ratio_lo"].to_list()[1] == float("-inf") and "district_lo" not in frame.columns
    assert "[lower, upper] when not, ∞ for an open end" in release.footer()
    one_end = _release(rows=[["Huli", 120, 5210.0, 0.31]], lower=[[None, 113.6, 4310.0, 0.21]],
                       upper=[[None, 126.4, 6110.0, None]])
    assert one_end.cells()[0][3] == "0.31 [0.21, ∞)" and one_end.parts()[0][3] == ("0.31", "[0.21, ∞)")


def test_a_release_without_rows_says_so_and_why() -> None:
    why = notes.note("no_groups.rows", threshold=53, unit="person_id")
    release = _release(rows=[], lower=[], upper=[], notes=[str(why)], note_details=[why.detail()])
    assert "no rows released" in release.footer()
    assert release.messages() == [(True, str(why))]
    assert "⚠ no group reached the release threshold" in repr(release)
    assert '<p class="sandbox-warning"' in release._repr_html_()
    chinese = _release(rows=[], lower=[], upper=[], notes=[str(why)], note_details=[why.detail()])
    object.__setattr__(chinese, "lang", "zh_CN")
    assert "没有发布任何行" in chinese.footer() and chinese.messages()[0][1].startswith("没有分组达到私有键的发布阈值")


def test_a_release_from_before_interval_ends_keeps_plus_minus() -> None:
    old = Release(columns=["n"], rows=[[3]], half_widths=[[6.4]], suppressed=[False],
                  columns_noise=[{"name": "n", "kind": "aggregate", "function": "count"}], lang="en")
    assert old.cells() == [["3 ± 6.4"]] and "± is the 95% interval half-width" in old.footer()
    assert old.to_polars(intervals=True)["n_lo"].to_list() == [0.0]  # a count's lower end is never below 0
