"""Chinese and English: which language, its messages, and its numbers.

    language   an explicit choice (console preference, `--lang`, `Sandbox(lang=)`)
               > the browser's Accept-Language (console)
               > SANDBOX_LANG > LC_ALL / LC_MESSAGES / LANG (CLI and client) > English
    messages   gettext catalogs: English source text, sandbox/locale/zh_CN/LC_MESSAGES/sandbox.po
               (`make i18n` extracts, updates and compiles; the .mo is committed and a test fails
               when it is stale or a message is untranslated)
    numbers    Babel's CLDR number formats, one `Numbers` per language: a released value is
               rounded to the precision its 95% interval supports; group keys print as keys

The server never uses a process-wide language: each request gets its own `translations` and
`Numbers`. The CLI and the client serve one person, so they read it from the environment.
"""

from __future__ import annotations

import gettext as _gettext
import math
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal
from babel.support import Translations

__all__ = [
    "DEFAULT",
    "LOCALES",
    "Numbers",
    "accepted",
    "choose",
    "from_environment",
    "normalize",
    "translations",
    "word",
]

LOCALES = ("en", "zh_CN")  # the catalogs we ship; en is the source text
DEFAULT = "en"
DOMAIN = "sandbox"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
# What each language is called in itself, for the language switch.
NAMES = {"en": "English", "zh_CN": "中文"}
# BCP 47 tags for HTML's lang attribute and HTTP's Accept-Language.
TAGS = {"en": "en", "zh_CN": "zh-CN"}


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


# Words that reach pages and tables as data (statuses, roles, outcomes, the console's menu),
# listed so that extraction finds them; `word()` translates them where they are shown.
WORDS = frozenset({
    N_("requested"), N_("active"), N_("rejected"), N_("revoked"), N_("expired"), N_("exhausted"),
    N_("suspended"), N_("queued"), N_("running"), N_("released"), N_("failed"), N_("cancelled"),
    N_("ok"), N_("developer"), N_("operator"), N_("auditor"), N_("admin"), N_("system"),
    N_("identifier"), N_("dimension"), N_("measure"), N_("key"), N_("aggregate"), N_("derived"),
    N_("approved"),
    N_("Requests"), N_("Agreements"), N_("Licences"), N_("Catalog"), N_("Audit log"), N_("Charts"),
    N_("My agreements"), N_("reinstated"), N_("amended"), N_("reactivated"),
    N_("awaiting"), N_("pending"), N_("delegated"), N_("steward"), N_("Stewardship"), N_("activated"),
    N_("resumed"),
})


def normalize(tag: str | None) -> str | None:
    """'zh-CN', 'zh_CN.UTF-8', 'zh-Hans', 'zh' -> 'zh_CN'; 'en-GB' -> 'en'; others -> None.

    Every Chinese variant gets our one Chinese catalog (Simplified, as used in Xiamen)."""
    if not tag:
        return None
    text = tag.strip().split(".")[0].split("@")[0].replace("_", "-").lower()
    language = text.split("-")[0]
    return {"zh": "zh_CN", "en": "en"}.get(language)


def accepted(header: str | None) -> list[str]:
    """Our locales in the order an Accept-Language header prefers them (RFC 9110 q-values)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        found = re.search(r"q\s*=\s*([0-9.]+)", params)
        if found:
            try:
                quality = float(found.group(1))
            except ValueError:
                quality = 0.0
        locale = normalize(tag)
        if locale and quality > 0:
            ranked.append((-quality, i, locale))
    seen: list[str] = []
    for _, _, locale in sorted(ranked):
        if locale not in seen:
            seen.append(locale)
    return seen


def choose(*candidates: str | Iterable[str] | None) -> str:
    """The first candidate we have a catalog for (each a tag or a list of tags), else English."""
    for candidate in candidates:
        for tag in [candidate] if candidate is None or isinstance(candidate, str) else candidate:
            locale = normalize(tag)
            if locale:
                return locale
    return DEFAULT


def from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The CLI's and the client's language: SANDBOX_LANG, then the POSIX locale variables."""
    env = os.environ if environ is None else environ
    return choose(env.get("SANDBOX_LANG"), env.get("LC_ALL"), env.get("LC_MESSAGES"), env.get("LANG"))


@cache
def translations(locale: str) -> _gettext.NullTranslations:
    """The catalog of one of LOCALES (English: the source text itself)."""
    if locale == DEFAULT:
        return _gettext.NullTranslations()
    return Translations.load(LOCALE_DIR, [locale], DOMAIN)


def word(value: Any, locale: str) -> str:
    """A status, role or outcome in the reader's language (other values unchanged)."""
    text = "" if value is None else str(value)
    return translations(locale).gettext(text) if text in WORDS else text


class Numbers:
    """Numbers as a reader of `locale` writes them (Babel's CLDR data), one instance per language.

    >>> Numbers("en").estimate(109_524_123.4, 3_712_345)
    ('109,500,000', '3,700,000')
    >>> Numbers("en").estimate(0.52341, 0.01234)
    ('0.523', '0.012')
    >>> Numbers("zh_CN").key(1980), Numbers("en").count(20000)
    ('1980', '20,000')
    """

    WIDTH_DIGITS = 2  # an interval's half-width is itself an estimate: two significant digits
    VALUE_DIGITS = 6  # a value without an interval (exact, or mock): six significant digits

    def __init__(self, locale: str = DEFAULT) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT

    def _decimal(self, value: float | int | Decimal, decimals: int, trim: bool = False) -> str:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        number = round(number, decimals) + 0  # "+ 0" turns -0 into 0
        pattern = "#,##0" + ("." + ("#" if trim else "0") * decimals if decimals > 0 else "")
        return format_decimal(number, format=pattern, locale=self.locale, decimal_quantization=True)

    @staticmethod
    def _place(value: float, digits: int) -> int:
        """Decimal places that keep `digits` significant digits of `value` (negative: tens, ...)."""
        return digits - 1 - math.floor(math.log10(abs(value)))

    def count(self, value: int | float) -> str:
        """A whole number with the locale's grouping: 20,000."""
        return self._decimal(int(round(value)), 0)

    def value(self, value: Any, digits: int | None = None) -> str:
        """A number with up to `digits` significant digits (at least as many as its whole part);
        without an interval to say how precise it is, trailing zeros say nothing: 2.4, not 2.40000."""
        if value is None:
            return "—"
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) or value == int(value) and abs(value) < 1e15:
            return self.count(value)
        places = max(self._place(float(value), digits or self.VALUE_DIGITS), 0)
        return self._decimal(value, places, trim=True)

    def estimate(self, value: float | int, half_width: float, *, integer: bool = False) -> tuple[str, str]:
        """A noisy value and its 95% half-width, both to the precision the half-width supports:
        the half-width to two significant digits, the value to the same decimal place (a count,
        `integer`, to no finer than units: 12 ± 6.4)."""
        if not half_width or not math.isfinite(half_width) or not math.isfinite(value):
            return self.value(value), self.value(half_width)
        place = self._place(half_width, self.WIDTH_DIGITS)
        width = round(Decimal(str(half_width)), place)
        if width and self._place(float(width), self.WIDTH_DIGITS) != place:  # 9.96 -> 10: one place fewer
            place -= 1
            width = round(Decimal(str(half_width)), place)
        value_place = min(place, 0) if integer else place
        rounded = round(Decimal(str(value)), value_place)
        return self._decimal(rounded, max(value_place, 0)), self._decimal(width, max(place, 0))

    def cell(self, value: Any, half_width: float | None = None, *, key: bool = False, integer: bool = False) -> str:
        """One released cell: a key as itself; a value '± half-width' when it has an interval."""
        if key:
            return self.key(value)
        if value is None:
            return "—"
        if half_width is None or not isinstance(value, int | float) or isinstance(value, bool):
            return self.value(value)
        shown, width = self.estimate(value, half_width, integer=integer)
        return f"{shown} ± {width}"

    def interval(self, value: Any, lower: float | None, upper: float | None, *,
                 integer: bool = False) -> tuple[str, str]:
        """A released value and its 95% interval (noise and estimated bias), both to the precision
        the interval supports: '± w' when it is symmetric about the value, '[lo, hi]' when it is
        not (bias on one side, or clipped to what the bounds allow), ∞ for an open (null) end. The
        ends are rounded outwards, so the interval shown contains the one released.

        >>> Numbers("en").interval(35.0, 16.5, 53.5, integer=True)
        ('35', '± 18')
        >>> Numbers("en").interval(13.0, 0.0, 31.45, integer=True)
        ('13', '[0, 32]')
        >>> Numbers("en").interval(94089.4, 5817.5, None)
        ('94,000', '[5,000, ∞)')
        """
        if value is None or isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            return self.value(value), ""
        ends = [e for e in (lower, upper) if e is not None and math.isfinite(e)]
        if len(ends) == 2:
            spread = (upper - lower) / 2  # type: ignore[operator]
        else:
            spread = max((abs(value - e) for e in ends), default=0.0)
        if not spread:
            shown = self.value(value)
            if len(ends) == 2:  # an interval of one point: the value is exact
                return shown, ""
        else:
            place = self._place(spread, self.WIDTH_DIGITS)
            place = min(place, 0) if integer else place
            shown = self._decimal(round(Decimal(str(value)), place), max(place, 0))
        if len(ends) == 2 and spread and abs((value - lower) - (upper - value)) <= 0.01 * (upper - lower):  # type: ignore[operator]
            width = self.estimate(value, spread, integer=integer)[1]
            return shown, f"± {width}"
        low = "(−∞" if lower is None or not math.isfinite(lower) else "[" + self._outward(lower, spread, integer, -1)
        high = "∞)" if upper is None or not math.isfinite(upper) else self._outward(upper, spread, integer, 1) + "]"
        return shown, f"{low}, {high}"

    def _outward(self, end: float, spread: float, integer: bool, direction: int) -> str:
        """An interval's end at the precision of its spread, rounded away from the value."""
        if not spread:
            return self.value(end)
        place = self._place(spread, self.WIDTH_DIGITS)
        place = min(place, 0) if integer else place
        step = Decimal(1).scaleb(-place)
        rounding = "ROUND_CEILING" if direction > 0 else "ROUND_FLOOR"
        rounded = (Decimal(str(end)) / step).to_integral_value(rounding=rounding) * step
        return self._decimal(rounded, max(place, 0))

    def key(self, value: Any) -> str:
        """A group key as written in the data: 1980 stays 1980 (no grouping), 10.0 is 10."""
        if value is None:
            return "NULL"
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return str(int(value))
        return str(value)

    def epsilon(self, value: float | None) -> str:
        """A privacy parameter: up to four significant digits, as the ledger stores it."""
        if value is None:
            return "—"
        if value == 0:
            return "0"
        if abs(value) < 1e-3:
            return f"{value:.1e}"
        places = max(self._place(value, 4), 0)
        number = round(Decimal(str(value)), places)
        return format_decimal(number, format="#,##0." + "#" * places if places else "#,##0", locale=self.locale)
