"""Chinese and English: the catalog is complete and compiled, the language is chosen as promised,
and numbers are shown to the precision their intervals support (Babel's formats per locale)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from sandbox import i18n
from tests.conftest import REPO

PO = REPO / "sandbox" / "locale" / "zh_CN" / "LC_MESSAGES" / "sandbox.po"
MO = PO.with_suffix(".mo")
BRACES = re.compile(r"\{(\w*)\}")


def messages(catalog) -> dict[object, object]:
    def plain(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    return {plain(m.id): plain(m.string) for m in catalog if m.id}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[object, object]:
    """Every translatable message in sandbox/ (Python and templates), as `make i18n` extracts them."""
    pot = tmp_path_factory.mktemp("i18n") / "sandbox.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "pyproject.toml", "-o", str(pot),
                    "--no-wrap", "sandbox"], cwd=REPO, check=True, capture_output=True)
    with pot.open("rb") as handle:
        found = messages(read_po(handle))
    assert len(found) > 400, "extraction found almost nothing: check [tool.babel] in pyproject.toml"
    return found


def test_every_message_has_a_chinese_translation(extracted) -> None:
    with PO.open("rb") as handle:
        catalog = read_po(handle)
    translated = {m.id: m for m in catalog if m.id}
    missing = [key for key in extracted if key not in translated]
    assert not missing, f"not in the zh_CN catalog (run `make i18n` and translate them): {missing}"
    empty = [m.id for m in translated.values() if m.id in extracted and (m.fuzzy or not all(
        m.string if isinstance(m.string, tuple) else [m.string]))]
    assert not empty, f"untranslated or fuzzy in {PO.name}: {empty}"


def test_translations_keep_the_placeholders() -> None:
    with PO.open("rb") as handle:
        catalog = read_po(handle)
    assert not [error for message in catalog for error in message.check(catalog)], "Babel's %-format checks"
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(BRACES.findall(ids[-1]))
        for text in strings:
            assert set(BRACES.findall(text)) == wanted, (message.id, text)


def test_the_compiled_catalog_is_current() -> None:
    """The .mo is committed (a wheel or a clone works without a build step); it must say what the .po says."""
    with PO.open("rb") as handle:
        source = {k: v for k, v in messages(read_po(handle)).items()}
    with MO.open("rb") as handle:
        compiled = messages(read_mo(handle))
    assert compiled == source, "sandbox.mo is stale: run `make i18n`"


def test_no_message_is_hidden_in_an_f_string() -> None:
    """Extraction cannot see `_()` inside an f-string; such a message would stay English for ever."""
    hidden = []
    for path in (REPO / "sandbox").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and getattr(inner.func, "id", getattr(inner.func, "attr", "")) in (
                            "_", "gettext", "ngettext"):
                        hidden.append(f"{path.relative_to(REPO)}:{inner.lineno}")
    assert not hidden, hidden


# -- choosing the language --------------------------------------------------------------------------
@pytest.mark.parametrize(("tag", "locale"), [
    ("zh-CN", "zh_CN"), ("zh_CN.UTF-8", "zh_CN"), ("zh-Hans-CN", "zh_CN"), ("zh", "zh_CN"), ("ZH-tw", "zh_CN"),
    ("en-GB", "en"), ("en_US.utf8", "en"), ("fr-FR", None), ("C.UTF-8", None), ("", None), (None, None), ("*", None),
])
def test_tags_map_to_our_catalogs(tag, locale) -> None:
    assert i18n.normalize(tag) == locale


@pytest.mark.parametrize(("header", "order"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", ["zh_CN", "en"]),
    ("en-US,en;q=0.9,zh-CN;q=0.8", ["en", "zh_CN"]),
    ("fr;q=1, zh;q=0.5, en;q=0.7", ["en", "zh_CN"]),
    ("en;q=0, zh-CN", ["zh_CN"]),
    ("de, *;q=0.1", []),
    ("", []),
])
def test_accept_language_is_read_with_its_weights(header, order) -> None:
    assert i18n.accepted(header) == order


def test_an_explicit_choice_wins_then_the_environment() -> None:
    assert i18n.choose(None, [], "zh-CN") == "zh_CN"
    assert i18n.choose("en", ["zh_CN"], "zh-CN") == "en"
    assert i18n.choose("fr", [], None) == "en"
    assert i18n.from_environment({"SANDBOX_LANG": "zh-CN", "LANG": "en_US.UTF-8"}) == "zh_CN"
    assert i18n.from_environment({"LC_ALL": "zh_CN.UTF-8"}) == "zh_CN"
    assert i18n.from_environment({"LANG": "C.UTF-8"}) == "en"


def test_words_from_data_are_translated_and_others_left_alone() -> None:
    assert i18n.word("active", "zh_CN") == "生效中" and i18n.word("active", "en") == "active"
    assert i18n.word("residents", "zh_CN") == "residents"


# -- numbers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "width", "integer", "en", "zh"), [
    (109_524_123.4, 3_712_345, False, "109,500,000 ± 3,700,000", "109,500,000 ± 3,700,000"),  # was 1.09524e+08
    (4521.37, 12.7, False, "4,521 ± 13", "4,521 ± 13"),
    (0.52341, 0.01234, False, "0.523 ± 0.012", "0.523 ± 0.012"),
    (3.2, 9.96, False, "3 ± 10", "3 ± 10"),  # 9.96 rounds up a decade: one digit fewer
    (-0.2, 0.31, False, "-0.20 ± 0.31", "-0.20 ± 0.31"),
    (12.0, 6.4, True, "12 ± 6.4", "12 ± 6.4"),  # a count stays whole
    (2_300.0, 12.2, True, "2,300 ± 12", "2,300 ± 12"),
    (20_000, 0, False, "20,000 ± 0", "20,000 ± 0"),
])
def test_a_value_is_shown_to_the_precision_of_its_interval(value, width, integer, en, zh) -> None:
    assert i18n.Numbers("en").cell(value, width, integer=integer) == en
    assert i18n.Numbers("zh_CN").cell(value, width, integer=integer) == zh


def test_keys_are_shown_as_keys_and_values_without_intervals_get_six_digits() -> None:
    numbers = i18n.Numbers("en")
    assert numbers.cell(1980, None, key=True) == "1980" and numbers.cell(10.0, None, key=True) == "10"
    assert numbers.cell("Tong'an", None, key=True) == "Tong'an" and numbers.cell(None, None, key=True) == "NULL"
    assert numbers.cell(1980, None) == "1,980"  # a value, not a key
    assert numbers.value(1234.56789) == "1,234.57" and numbers.value(0.000123456789) == "0.000123457"
    assert [numbers.epsilon(e) for e in (0.5, 5, 1000, 0.123456, 1e-5)] == ["0.5", "5", "1,000", "0.1235", "1.0e-05"]


def test_the_client_renders_a_release_with_keys_counts_and_intervals() -> None:
    from sandbox.client import Release

    release = Release(columns=["founded_year", "n", "revenue"], rows=[[1980, 12.0, 109_524_123.4], [1981, None, None]],
                      half_widths=[[None, 6.4, 3_712_345.0], [None, None, None]], suppressed=[False, True],
                      keys=["founded_year"], columns_noise=[{"name": "n", "kind": "aggregate", "function": "count"}],
                      charge_epsilon=0.5, remaining_epsilon=1.5, budget_epsilon=2.0, lang="zh_CN")
    assert release.cells() == [["1980", "12 ± 6.4", "109,500,000 ± 3,700,000"], ["1981", None, None]]
    assert "剩余预算 ε 1.5（共 2）" in release.footer() and "1 行已抑制" in release.footer()
    lower = release.to_polars(intervals=True)["n_lo"][0]
    assert lower == pytest.approx(5.6)
    low_count = Release(columns=["n"], rows=[[2.0]], half_widths=[[6.4]], suppressed=[False],
                        columns_noise=[{"name": "n", "function": "count"}])
    assert low_count.to_polars(intervals=True)["n_lo"][0] == 0.0  # a count is never below zero


def test_i18n_package_data_is_installed() -> None:
    """The catalogs ship with the package (pyproject's package-data), not only in the repository."""
    text = (REPO / "pyproject.toml").read_text()
    assert "locale/*/LC_MESSAGES/*.mo" in text
    assert Path(i18n.LOCALE_DIR, "zh_CN", "LC_MESSAGES", "sandbox.mo") == MO
