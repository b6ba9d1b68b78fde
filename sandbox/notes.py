"""What a plan or a release tells its reader besides the numbers, as data: a key and its values.

A note is made where the fact is known (the planner, the worker) and said where it is read. The
API sends each note twice, in the same order: as English text in `notes` (every reader of the
JSON gets it) and as `{"key": ..., **values}` in `note_details`, from which the client, the CLI
and the console say it in the reader's language (`say`). Warnings (`WARNINGS`: groups that may
be missing, rows left out, values clamped, open interval ends) are shown as such.

    >>> str(note("rows", unit="person_id", rows=12))
    'each person_id contributes at most 12 rows, chosen by a keyed hash'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Marks a message for extraction (`make i18n`); said in the reader's language by `say`.
    (Not sandbox.i18n's: the compiler and the worker make notes without loading Babel.)"""
    return message

__all__ = ["MESSAGES", "WARNINGS", "Note", "note", "percent", "say"]

MESSAGES: dict[str, str] = {
    "private_keys.units": N_(
        "the group keys are private: a group needs about {threshold} {unit} values (a noisy count) to be released, "
        "so smaller groups never appear; to see every group, group by keys with a public key set (declared keys, "
        "bounded integers or dates)"),
    "private_keys.rows": N_(
        "the group keys are private: a group needs about {threshold} rows (a noisy count) to be released, so smaller "
        "groups never appear; to see every group, group by keys with a public key set (declared keys, bounded "
        "integers or dates)"),
    "no_groups.units": N_(
        "no group reached the release threshold for private keys: a group needs about {threshold} {unit} values (a "
        "noisy count) to appear, so nothing was released; group by a coarser key, or one with a public key set"),
    "no_groups.rows": N_(
        "no group reached the release threshold for private keys: a group needs about {threshold} rows (a noisy "
        "count) to appear, so nothing was released; group by a coarser key, or one with a public key set"),
    "public_keys_only": N_(
        "only group keys were asked for, and their key set is public (declared in the policy): every key of it is "
        "listed, also keys absent from the data, without reading data and without charging budget"),
    "extremes": N_(
        "MIN and MAX are differentially private quantiles near the extremes (the 1% and 99% quantiles), not the exact "
        "smallest and largest values, which single persons decide; the interval of MIN reaches down to the "
        "column's lower bound and that of MAX up to its upper bound, so that it covers the exact extreme"),
    "joined_rows": N_(
        "each {unit} contributes at most {rows} joined rows: {caps}, each side's rows chosen by their keyed-hash "
        "ranks before the join"),
    "rows": N_("each {unit} contributes at most {rows} rows, chosen by a keyed hash"),
    "rows_left_out": N_(
        "about {share} of {dataset}'s rows are left out by keeping at most {rows} per {unit}: counts and sums come "
        "out low, and the intervals allow for it"),
    "rows_left_out.below_ceiling": N_(
        "about {share} of {dataset}'s rows are left out by keeping at most {rows} per {unit}: counts and sums come "
        "out low, and the intervals allow for it; ask for up to {ceiling} (the ceiling) to keep more"),
    "max_groups": N_(
        "each {unit} is counted in at most {groups} groups: one with more groups loses the rows of the others (not "
        "included in the intervals); ask for a larger max_groups, up to the policy's ceiling, if many do"),
    "clamped.above": N_(
        "about {share} of {column} values lie above {bound} and are clamped to it: sums and averages of it come out "
        "low, and the intervals allow for it"),
    "clamped.below": N_(
        "about {share} of {column} values lie below {bound} and are clamped to it: sums and averages of it come out "
        "high, and the intervals allow for it"),
    "clamped_input.above": N_(
        "about {share} of {column} values lie above {bound}: an aggregated expression computed from it is clamped to "
        "the bounds derived from that bound, so its sums and averages come out low (not included in the intervals)"),
    "clamped_input.below": N_(
        "about {share} of {column} values lie below {bound}: an aggregated expression computed from it is clamped to "
        "the bounds derived from that bound, so its sums and averages come out high (not included in the intervals)"),
    "open_ends": N_(
        "{n} value(s) of {column} have no finite interval (a missing end means unbounded): the interval of a "
        "denominator includes 0; a larger epsilon or larger groups narrow it"),
}

# Notes a reader must not miss: shown as warnings (⚠) before the others.
WARNINGS = frozenset({"private_keys.units", "private_keys.rows", "no_groups.units", "no_groups.rows",
                      "rows_left_out", "rows_left_out.below_ceiling", "max_groups", "clamped.above",
                      "clamped.below", "clamped_input.above", "clamped_input.below", "open_ends"})

_COUNTS = frozenset({"threshold", "rows", "groups", "ceiling", "n"})


@dataclass(frozen=True)
class Note:
    key: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return say(self.detail(), "en")

    @property
    def warning(self) -> bool:
        return self.key in WARNINGS

    def detail(self) -> dict[str, Any]:
        """The wire form: {"key": ..., **values}."""
        return {"key": self.key, **self.values}


def note(key: str, **values: Any) -> Note:
    if key not in MESSAGES:
        raise KeyError(f"no note {key!r}; add it to sandbox.notes.MESSAGES")
    return Note(key, values)


def say(detail: Mapping[str, Any], locale: str) -> str:
    """A note's text in `locale`, its numbers as that language writes them; '' for a key this
    version does not know (the caller then shows the server's English text)."""
    from sandbox import i18n

    key = detail.get("key")
    if key not in MESSAGES:
        return ""
    numbers = i18n.Numbers(locale)
    shown = {}
    for name, value in detail.items():
        if name in _COUNTS and isinstance(value, int | float):
            shown[name] = numbers.count(value)
        elif name == "share" and isinstance(value, int | float):
            shown[name] = percent(value, numbers.locale)
        elif name == "bound" and isinstance(value, int | float):
            shown[name] = numbers.value(value)
        else:
            shown[name] = value
    return i18n.translations(numbers.locale).gettext(MESSAGES[key]).format_map(_Missing(shown))


def percent(share: float, locale: str) -> str:
    """A share as a percentage, to one decimal place below 10%: 6.2%, 25%, 0.4%."""
    from babel.numbers import format_percent

    digits = 1 if share < 0.1 else 0
    return format_percent(share, format="#,##0" + ("." + "#" * digits if digits else "") + "%", locale=locale)


class _Missing(dict):
    """A value the note lacks shows as its name, never a KeyError in front of a reader."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"
