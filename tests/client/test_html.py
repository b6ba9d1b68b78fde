"""The notebook renderings, parsed back with html.parser: tables, intervals, suppression, banners."""

from __future__ import annotations

from html.parser import HTMLParser

from sandbox.client import Agreement, Release, Verification


class Page(HTMLParser):
    """Just enough structure: table headers, rows of (classes, text) cells, and other text by class."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[list[tuple[str, str]]] = []
        self.row_classes: list[str] = []
        self.by_class: dict[str, list[str]] = {}
        self._stack: list[tuple[str, str]] = []
        self._text: list[str] = []
        self.feed(markup)
        self.close()
        assert not self._stack, f"unclosed tags: {self._stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        css = dict(attrs).get("class") or ""
        self._stack.append((tag, css))
        if tag == "tr" and self._inside("tbody"):
            self.rows.append([])
            self.row_classes.append(css)
        if tag in ("td", "th", "div", "p", "span", "h4", "summary"):
            self._text.append("")

    def handle_endtag(self, tag: str) -> None:
        open_tag, css = self._stack.pop()
        assert open_tag == tag, f"</{tag}> closes <{open_tag}>"
        if tag in ("td", "th", "div", "p", "span", "h4", "summary"):
            text = self._text.pop().strip()
            if self._text:
                self._text[-1] += text
            if tag == "th":
                self.headers.append(text)
            elif tag == "td":
                self.rows[-1].append((css, text))
            for name in css.split():
                self.by_class.setdefault(name, []).append(text)

    def handle_data(self, data: str) -> None:
        if self._text:
            self._text[-1] += data

    def _inside(self, tag: str) -> bool:
        return any(t == tag for t, _ in self._stack)


def test_a_real_release_renders_values_with_intervals_and_the_budget(developer) -> None:
    release = developer.query("SELECT district, COUNT(*) AS people, AVG(age) AS age FROM residents GROUP BY district",
                              epsilon=0.3)
    page = Page(release._repr_html_())
    assert page.headers == ["district", "people", "age"]
    assert sorted(row[0][1] for row in page.rows) == sorted(r[0] for r in release.rows)
    for row in page.rows:
        assert "±" not in row[0][1]  # keys carry no interval
        assert all("±" in text for _, text in row[1:])  # every aggregate does
    assert page.by_class["pm"][0].startswith("± ")
    footer = page.by_class["sandbox-footer"][0]
    assert f"ε {release.charge_epsilon:g} charged" in footer and "budget left ε" in footer and "95%" in footer
    assert "sandbox-banner" not in page.by_class


def test_suppressed_rows_are_marked_and_markup_is_escaped() -> None:
    release = Release(columns=["<b>key</b>", "n"], rows=[["a&b", 120.0], ["rare", None]],
                      half_widths=[[None, 9.87], [None, 9.87]], suppressed=[False, True], charge_epsilon=0.5,
                      remaining_epsilon=1.5, budget_epsilon=2.0)
    page = Page(release._repr_html_())
    assert page.headers == ["<b>key</b>", "n"]
    assert page.rows[0] == [("", "a&b"), ("", "120 ± 9.9")]
    assert page.rows[1] == [("", "rare"), ("suppressed", "suppressed")]
    assert page.row_classes == ["", "suppressed"]
    assert "1 row(s) suppressed" in page.by_class["sandbox-footer"][0]
    assert "budget left ε 1.5 of 2" in page.by_class["sandbox-footer"][0]


def test_a_mock_release_says_so_first(developer) -> None:
    mock = developer.mock_query("SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex ORDER BY sex", rows=300)
    page = Page(mock._repr_html_())
    assert page.by_class["sandbox-banner"] == ["MOCK DATA — not real"]
    assert "sandbox-mock" in page.by_class
    assert [row[0][1] for row in page.rows] == ["F", "M"] and sum(int(r[1][1]) for r in page.rows) == 300
    assert "fake rows" in page.by_class["sandbox-footer"][0] and "nothing spent" in page.by_class["sandbox-footer"][0]
    assert repr(mock).startswith("MOCK DATA — not real")


def test_catalog_explain_agreement_and_verification(developer, auditor) -> None:
    info = Page(developer.describe("medical_visits")._repr_html_())
    assert info.headers == ["column", "role", "type", "bounds", "keys", "nullable", "description"]
    rows = {row[0][1]: [text for _, text in row] for row in info.rows}
    assert rows["person_id"][1] == "privacy unit" and rows["cost"][3] == "[0, 50,000]"
    assert rows["department"][4].count(", ") == 7  # eight public keys, all shown
    pums = {row[0][1]: row[4][1] for row in Page(developer.describe("pums_pid")._repr_html_()).rows}
    assert pums["educ"] == "1, 2, 3, 4, 5, 6, 7, 8, … (16 keys)"  # longer lists are abbreviated

    explanation = Page(developer.explain("SELECT hospital, COUNT(*) AS n FROM medical_visits GROUP BY hospital",
                                         epsilon=0.4)._repr_html_())
    assert explanation.headers == ["column", "aggregate", "expected 95% interval"]
    assert explanation.rows[1][2][1].startswith("± ")
    assert "would cost ε 0.4" in explanation.by_class["sandbox-explain"][0]
    assert "SELECT" in explanation.by_class["sandbox-explain"][0]  # the bounded SQL, folded away

    budget = developer.budget()
    assert isinstance(budget, Agreement)
    facts = {row[0][1]: row[1][1] for row in Page(budget._repr_html_()).rows}
    assert facts["status"] == "active" and facts["ε left"].endswith(f"(spent {budget.spent_epsilon:g})")

    good = Page(auditor.verify()._repr_html_())
    assert good.by_class["ok"][0].startswith("✔ audit chain verified")
    bad = Page(Verification(ok=False, events=9, head_hash="ab", first_bad_seq=4, reason="hash mismatch")._repr_html_())
    assert bad.by_class["broken"] == ["✘ audit chain broken at event 4: hash mismatch"]
