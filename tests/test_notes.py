"""What a release tells its reader besides numbers (sandbox/notes.py): every note is said in both
languages with every value in place, and numbers as the language writes them."""

from __future__ import annotations

import doctest
import re

import pytest

from sandbox import i18n, notes

VALUES = {"threshold": 1347, "unit": "person_id", "rows": 10, "caps": "1 (residents) × 10 (medical_visits)",
          "share": 0.062, "dataset": "medical_visits", "ceiling": 40, "groups": 6,
          "column": "residents.monthly_income", "bound": 200000.0, "n": 3}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("key", sorted(notes.MESSAGES))
def test_every_note_is_said_in_both_languages_with_its_values(key: str) -> None:
    needed = set(re.findall(r"\{(\w+)\}", notes.MESSAGES[key]))
    detail = notes.note(key, **{name: VALUES[name] for name in needed}).detail()
    english, chinese = notes.say(detail, "en"), notes.say(detail, "zh_CN")
    for text in (english, chinese):
        assert "{" not in text and "}" not in text, text
    assert CJK.search(chinese) and not CJK.search(english)
    for name in needed & {"unit", "dataset", "column"}:  # names stay as written, in both
        assert VALUES[name] in english and VALUES[name] in chinese


def test_numbers_in_notes_are_written_as_the_language_writes_them() -> None:
    keys = notes.note("private_keys.rows", threshold=1347, unit="person_id")
    assert "about 1,347 rows" in str(keys)
    left = notes.note("rows_left_out.below_ceiling", share=0.062, dataset="medical_visits", rows=10,
                      unit="person_id", ceiling=40)
    assert str(left).startswith("about 6.2% of medical_visits's rows are left out by keeping at most 10 per person_id")
    assert str(left).endswith("ask for up to 40 (the ceiling) to keep more")
    assert "约有 6.2% 的行" in notes.say(left.detail(), "zh_CN")
    clamped = notes.note("clamped.above", share=0.25, column="enterprises.employees", bound=200.0)
    assert str(clamped).startswith("about 25% of enterprises.employees values lie above 200 and")


def test_an_unknown_note_says_nothing() -> None:
    assert notes.say({"key": "from_a_newer_server", "x": 1}, "zh_CN") == ""  # the caller shows the English text
    with pytest.raises(KeyError, match="add it to sandbox.notes.MESSAGES"):
        notes.note("no_such_note")


def test_the_doctests_hold() -> None:
    for module in (notes, i18n):
        assert doctest.testmod(module).failed == 0, module.__name__
