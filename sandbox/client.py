"""The notebook client: one import, one object.

    from sandbox.client import Sandbox

    sb = Sandbox()                          # SANDBOX_URL, SANDBOX_TOKEN (and SANDBOX_AGREEMENT)
    sb.datasets()                           # the catalog: schemas and policies, never rows
    sb.describe("residents")                # columns, roles, bounds, public keys
    sb.mock_query(sql, rows=2000)           # exact answer over fake rows: debug for free
    sb.explain(sql, epsilon=0.5)            # cost and expected accuracy, free
    release = sb.query(sql, epsilon=0.5)    # noisy aggregates with 95% intervals
    release.to_polars(intervals=True)

Every method is one HTTP call (or a few) to the sandbox's API; roles are checked by the server,
so operators (`approve`, `license_developer`, ...) and auditors (`audit`, `verify`, `export`)
use the same object with their own token. Errors are the server's own exception classes
(`sandbox.errors`) with short, notebook-friendly messages that end with what to do; a network
problem is a `SandboxUnreachable` that says what to check. Long jobs show a progress bar and
Ctrl-C (or the notebook's interrupt button) cancels them on the server.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl

from sandbox import errors as _errors
from sandbox import i18n
from sandbox import notes as notes_module
from sandbox._version import __version__
from sandbox.errors import SandboxError
from sandbox.i18n import N_
from sandbox.mock import mock_frame

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = [
    "Agreement",
    "DatasetInfo",
    "Explanation",
    "JobCancelled",
    "NotConfigured",
    "Release",
    "Sandbox",
    "SandboxUnreachable",
    "Verification",
]

_FINAL = ("released", "rejected", "failed", "cancelled")
_GROUPED = re.compile(r"\bgroup\s+by\b", re.IGNORECASE)
_MAX_HTML_ROWS = 60


# -- errors ------------------------------------------------------------------------------------
def _tr(lang: str | None) -> Any:
    """The gettext catalog of `lang` (a tag such as "zh-CN", or a locale; None: the environment's)."""
    return i18n.translations(i18n.choose(lang) if lang else i18n.from_environment())


# What each error is, in words, for readers of another language than the server's messages.
ERROR_TITLES = {
    "unreachable": N_("the sandbox did not answer"), "not_configured": N_("the client is not configured"),
    "cancelled": N_("job cancelled"), "sql_rejected": N_("query refused"), "invalid_parameter": N_("invalid value"),
    "invalid_request": N_("invalid request"), "budget_exceeded": N_("over the per-query cap"),
    "budget_exhausted": N_("budget exhausted"), "unauthorized": N_("not signed in"), "forbidden": N_("not allowed"),
    "not_found": N_("not found"), "dataset_not_found": N_("no such dataset"), "conflict": N_("not possible now"),
    "agreement_inactive": N_("agreement not active"), "rate_limited": N_("too many requests"),
    "too_many_jobs": N_("too many jobs"), "payload_too_large": N_("request too large"),
    "query_failed": N_("the query failed"), "query_timeout": N_("the query took too long"),
    "resource_exhausted": N_("the query needed too much memory"), "internal": N_("server error"),
}


def error_title(code: str, lang: str | None = None) -> str:
    """The error's kind in the reader's language ('' in English: the message itself says it)."""
    lang = lang or i18n.from_environment()
    if lang == i18n.DEFAULT or code not in ERROR_TITLES:
        return ""
    return _tr(lang).gettext(ERROR_TITLES[code])


class _Short:
    """Short messages: the pointer under the SQL in `str()`, no traceback in IPython; in another
    language than English the error's kind is named in it first."""

    message: str
    fields: dict[str, Any]
    code: str
    lang: str | None = None

    def __str__(self) -> str:
        pointer = self.fields.get("pointer")
        return self.message + ("\n" + textwrap.indent(pointer, "    ") if pointer else "")

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        first, *rest = str(self).splitlines() or [""]
        title = error_title(self.code, self.lang)
        name = type(self).__name__ + (f" ({title})" if title else "")
        return [f"\x1b[1;31m{name}\x1b[0m: {first}", *rest]


class SandboxUnreachable(_Short, SandboxError):
    """The sandbox did not answer: not running, wrong URL, or the network."""

    status, code = 503, "unreachable"


class NotConfigured(_Short, SandboxError):
    """The client lacks a URL, a token or an agreement."""

    status, code = 400, "not_configured"


class JobCancelled(_Short, SandboxError):
    """A job stopped by Ctrl-C (or cancelled elsewhere); says whether its charge was kept."""

    status, code = 409, "cancelled"


def _client_classes() -> dict[str, type[SandboxError]]:
    """The server's error classes by code, each with the client's short rendering mixed in, so
    `except sandbox.errors.SQLRejected` works on both sides of the wire. Each is also a private
    name of this module (`_RemoteSQLRejected`), so the errors pickle."""
    classes: dict[str, type[SandboxError]] = {}
    for name in _errors.__all__:
        base = getattr(_errors, name)
        cls = type(name, (_Short, base), {"__module__": __name__, "__qualname__": f"_Remote{name}",
                                          "__doc__": base.__doc__})
        globals()[f"_Remote{name}"] = classes[base.code] = cls
    return classes


_REMOTE = _client_classes()


def _remote_error(code: str, message: str, fields: dict[str, Any], status: int,
                  lang: str | None = None) -> SandboxError:
    cls = _REMOTE.get(code, _REMOTE["internal"])
    err = cls.__new__(cls)
    SandboxError.__init__(err, message, **fields)
    if cls.code != code:  # e.g. the API's `invalid_request`
        err.code, err.status = code, status  # type: ignore[misc]
    err.lang = lang  # type: ignore[attr-defined]
    return err


# -- results -----------------------------------------------------------------------------------
def _table_html(columns: Sequence[str], rows: Sequence[Sequence[str]], *, row_classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(row) + "</tr>")
    return f'<table class="sandbox-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=list(columns))
    return pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], infer_schema_length=None)


def _env_lang() -> str:
    return i18n.from_environment()


@dataclass(frozen=True)
class Release:
    """What a query returns: noisy values, each with its 95% interval, suppressed rows, the
    charge, the budget left afterwards, and what the reader must know (`messages()`).

    The interval of a cell (`lower`/`upper`, from the server) covers the noise and the bias that
    contribution bounding and clamping are estimated to cause; None is an open end (unbounded).
    It is shown as '± half-width' when symmetric about the value, as '[lower, upper]' when not.
    `half_widths` are the noise's alone. A release from before intervals had both ends shows
    '± half-width'. A mock release (`Sandbox.mock_query`) has the same shape, `mock=True`, exact
    values over fake rows, no intervals and no charge; it says so wherever it is shown. `keys`
    names the GROUP BY columns, shown as written in the data; `lang` is the language it is shown in.
    """

    columns: list[str]
    rows: list[list[Any]]
    half_widths: list[list[float | None]]
    suppressed: list[bool]
    epsilon: float = 0.0
    delta: float = 0.0
    charge_epsilon: float = 0.0
    charge_delta: float = 0.0
    reused: bool = False
    job_id: str | None = None
    agreement_id: str | None = None
    sql: str = ""
    remaining_epsilon: float | None = None
    budget_epsilon: float | None = None
    notes: list[str] = field(default_factory=list)
    columns_noise: list[dict[str, Any]] = field(default_factory=list)
    mock: bool = False
    mock_rows: int = 0
    keys: list[str] = field(default_factory=list)
    lower: list[list[float | None]] = field(default_factory=list)  # empty: the server sent no interval ends
    upper: list[list[float | None]] = field(default_factory=list)
    note_details: list[dict[str, Any]] = field(default_factory=list)  # the notes as data (sandbox/notes.py)
    bias: list[dict[str, Any]] = field(default_factory=list)  # estimated rows left out, values clamped
    contribution: dict[str, Any] | None = None  # the contribution bounds the query asked for
    ends: bool = False  # the server sent both ends of every interval (`lower`, `upper`)
    lang: str = field(default_factory=_env_lang, repr=False, compare=False)

    @classmethod
    def from_job(cls, job: Mapping[str, Any], agreement: Mapping[str, Any] | None = None,
                 lang: str | None = None) -> Release:
        result = job["result"]
        noise = list(result.get("columns_noise") or [])
        return cls(
            columns=list(result["columns"]), rows=[list(r) for r in result["rows"]],
            half_widths=[list(h) for h in result["half_widths"]], suppressed=list(result["suppressed"]),
            epsilon=result["epsilon"], delta=result["delta"], charge_epsilon=job["charge_epsilon"],
            charge_delta=job["charge_delta"], reused=job["reused"], job_id=job["id"],
            agreement_id=job["agreement_id"], sql=job["sql"],
            remaining_epsilon=agreement["remaining_epsilon"] if agreement else None,
            budget_epsilon=agreement["budget_epsilon"] if agreement else None,
            notes=list(result.get("notes") or []), columns_noise=noise,
            keys=[c["name"] for c in noise if c.get("kind") == "key"],
            lower=[list(r) for r in result.get("lower") or []], upper=[list(r) for r in result.get("upper") or []],
            note_details=list(result.get("note_details") or []), bias=list(result.get("bias") or []),
            contribution=job.get("contribution"), ends="lower" in result and "upper" in result,
            lang=lang or i18n.from_environment(),
        )

    @property
    def _has_ends(self) -> bool:
        return self.ends and len(self.lower) == len(self.rows) == len(self.upper)

    # -- tables --------------------------------------------------------------------------------
    def to_polars(self, intervals: bool = False) -> pl.DataFrame:
        """The released values; with `intervals=True` also `<col>_lo`/`<col>_hi` (95%, noise and
        estimated bias) for every column that has intervals, and a `suppressed` flag. An open end
        is -inf/inf; a suppressed cell's ends are null. (A release from before the server sent
        both ends: value ± half-width, a count's lower end never below zero.)"""
        frame = pl.DataFrame(self.rows, schema=self.columns, orient="row", infer_schema_length=None)
        if not intervals:
            return frame
        counts = {c["name"] for c in self.columns_noise if c.get("function") == "count"}
        keys = set(self.keys)
        extra: list[pl.Series] = []
        for j, name in enumerate(self.columns):
            values = [row[j] for row in self.rows]
            if self._has_ends and name not in keys:
                if all(v is None or not _number(v) for v in values) and all(w[j] is None for w in self.half_widths):
                    continue
                lows = [_end(v, lo[j], -1) for v, lo in zip(values, self.lower, strict=True)]
                highs = [_end(v, hi[j], 1) for v, hi in zip(values, self.upper, strict=True)]
            else:
                widths = [row[j] for row in self.half_widths]
                if all(w is None for w in widths):
                    continue
                floor = 0.0 if name in counts else None
                lows = [_shift(v, w, -1, floor) for v, w in zip(values, widths, strict=True)]
                highs = [_shift(v, w, 1) for v, w in zip(values, widths, strict=True)]
            extra.append(pl.Series(f"{name}_lo", lows, dtype=pl.Float64))
            extra.append(pl.Series(f"{name}_hi", highs, dtype=pl.Float64))
        extra.append(pl.Series("suppressed", self.suppressed, dtype=pl.Boolean))
        return frame.with_columns(extra)

    def to_arrow(self) -> pyarrow.Table:
        return self.to_polars().to_arrow()

    def to_pandas(self) -> pandas.DataFrame:
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas (or use to_polars())") from None
        return self.to_polars().to_pandas()

    def half_width(self, column: str) -> list[float | None]:
        """95% half-widths of the noise of one column, e.g. for matplotlib's `yerr`."""
        j = self.columns.index(column)
        return [row[j] for row in self.half_widths]

    def __len__(self) -> int:
        return len(self.rows)

    # -- display -------------------------------------------------------------------------------
    def parts(self) -> list[list[tuple[str, str] | None]]:
        """Every cell as (value, interval) shown: keys as written; values at the precision their
        interval supports (Babel's number format of `lang`), the interval '± w', '[lo, hi]' or
        with ∞ for an open end ('' if none); None for a suppressed cell."""
        numbers = i18n.Numbers(self.lang)
        keys = set(self.keys)
        counts = {c["name"] for c in self.columns_noise if c.get("function") == "count"}
        ends = self._has_ends
        shown: list[list[tuple[str, str] | None]] = []
        for i, row in enumerate(self.rows):
            cells: list[tuple[str, str] | None] = []
            for j, value in enumerate(row):
                name = self.columns[j]
                if self.suppressed[i] and value is None:
                    cells.append(None)
                elif name in keys:
                    cells.append((numbers.key(value), ""))
                elif ends and _number(value):
                    cells.append(numbers.interval(value, self.lower[i][j], self.upper[i][j],
                                                  integer=name in counts))
                else:
                    text = numbers.cell(value, self.half_widths[i][j], integer=name in counts)
                    value_text, sep, width = text.partition(" ± ")
                    cells.append((value_text, f"± {width}" if sep else ""))
            shown.append(cells)
        return shown

    def cells(self) -> list[list[str | None]]:
        """Every cell as one string ('12 ± 6.4', '13 [0, 32]', '3.2 [1.1, ∞)'); None if suppressed."""
        return [[None if part is None else " ".join(p for p in part if p) for part in row] for row in self.parts()]

    def messages(self) -> list[tuple[bool, str]]:
        """What the reader must know, in `lang`: (is it a warning, text), warnings first — groups
        that may be missing or were not released, rows left out, values clamped, open interval
        ends — then how the query was bounded."""
        return _messages(self.notes, self.note_details, self.lang)

    def _cell_html(self, part: tuple[str, str] | None) -> str:
        _ = _tr(self.lang).gettext
        if part is None:
            label, why = html.escape(_("suppressed")), html.escape(_("suppressed: below the minimum count"))
            return f'<td class="suppressed" title="{why}">{label}</td>'
        value, interval = part
        shown = html.escape(value) + (f' <span class="pm">{html.escape(interval)}</span>' if interval else "")
        return f"<td>{shown}</td>"

    def footer(self) -> str:
        t = _tr(self.lang)
        _ = t.gettext
        numbers = i18n.Numbers(self.lang)
        if self.mock:
            return _("exact answer over {rows} fake rows per dataset; nothing spent").format(
                rows=numbers.count(self.mock_rows))
        parts = [_("ε {epsilon} charged").format(epsilon=numbers.epsilon(self.charge_epsilon))
                 + (_(" (reused: same query, no charge)") if self.reused else "")]
        if self.charge_delta:
            parts.append(f"δ {numbers.epsilon(self.charge_delta)}")
        if self.remaining_epsilon is not None:
            if self.budget_epsilon is not None:
                parts.append(_("budget left ε {left} of {budget}").format(
                    left=numbers.epsilon(self.remaining_epsilon), budget=numbers.epsilon(self.budget_epsilon)))
            else:
                parts.append(_("budget left ε {left}").format(left=numbers.epsilon(self.remaining_epsilon)))
        if self._has_ends:
            parts.append(_("{level} intervals cover the noise and the estimated bias: ± when symmetric, [lower, upper] "
                           "when not, ∞ for an open end").format(level="95%"))
        else:
            parts.append(_("± is the {level} interval half-width").format(level="95%"))
        suppressed = sum(self.suppressed)
        if suppressed:
            parts.append(t.ngettext("{n} row suppressed", "{n} rows suppressed", suppressed).format(n=suppressed))
        if not self.rows and not self.mock:
            parts.append(_("no rows released"))
        return " · ".join(parts)

    def _banner(self) -> str:
        return _tr(self.lang).gettext("MOCK DATA — not real")

    def _repr_html_(self) -> str:
        _ = _tr(self.lang).gettext
        cells = self.parts()[:_MAX_HTML_ROWS]
        rows = [[self._cell_html(part) for part in row] for row in cells]
        classes = ["suppressed" if self.suppressed[i] else "" for i in range(len(cells))]
        parts = [f'<div class="sandbox-release{" sandbox-mock" if self.mock else ""}">']
        if self.mock:
            parts.append('<div class="sandbox-banner" style="background:#b00020;color:white;font-weight:bold;'
                         f'padding:4px 8px">{html.escape(self._banner())}</div>')
        parts.append(_table_html(self.columns, rows, row_classes=classes))
        if len(self.rows) > _MAX_HTML_ROWS:
            more = _("… {n} more rows: use .to_polars()").format(n=len(self.rows) - _MAX_HTML_ROWS)
            parts.append(f"<p>{html.escape(more)}</p>")
        parts.append(f'<p class="sandbox-footer"><small>{html.escape(self.footer())}</small></p>')
        parts.append(_messages_html(self.messages()))
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        _ = _tr(self.lang).gettext
        head = self._banner() + "\n" if self.mock else ""
        lines = [" | ".join(self.columns)]
        for row in self.cells()[:20]:
            lines.append(" | ".join(_("suppressed") if text is None else text for text in row))
        if len(self.rows) > 20:
            lines.append(_("… {n} more rows").format(n=len(self.rows) - 20))
        lines.extend(_message_line(warning, text) for warning, text in self.messages())
        return f"{head}Release({len(self.rows)} rows)\n" + "\n".join(lines) + f"\n({self.footer()})"


def _threshold_sentence(plan: Mapping[str, Any], lang: str) -> str | None:
    """From an explain answer: how large a group must be to appear, when the keys are private."""
    for detail in plan.get("note_details") or []:
        if str(detail.get("key", "")).startswith("private_keys"):
            return notes_module.say(detail, lang) or None
    return next((n for n in plan.get("notes") or [] if "group keys are private" in n), None)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _end(value: Any, end: float | None, sign: int) -> float | None:
    """An interval's end for a table: None (an open end) is -inf/inf; no value, no end."""
    if value is None or not _number(value):
        return None
    return float(end) if end is not None else sign * math.inf


def _messages(notes: Sequence[str], details: Sequence[Mapping[str, Any]], lang: str) -> list[tuple[bool, str]]:
    """Notes in `lang` from their details (same order as the English text), warnings first; a
    note this client does not know is shown as the server wrote it."""
    found = []
    aligned = len(details) == len(notes)
    for i, text in enumerate(notes):
        detail = details[i] if aligned else {}
        said = notes_module.say(detail, lang) if detail else ""
        found.append((detail.get("key") in notes_module.WARNINGS, said or text))
    return [m for m in found if m[0]] + [m for m in found if not m[0]]


def _message_line(warning: bool, text: str) -> str:
    return ("⚠ " if warning else "· ") + text


_WARNING_STYLE = "background:#fff4e5;border-left:4px solid #e67700;padding:4px 8px;margin:4px 0"


def _messages_html(messages: Sequence[tuple[bool, str]]) -> str:
    return "".join(
        f'<p class="sandbox-warning" style="{_WARNING_STYLE}">⚠ {html.escape(text)}</p>' if warning
        else f'<p class="sandbox-note"><small>{html.escape(text)}</small></p>'
        for warning, text in messages)


def _shift(value: Any, width: float | None, sign: int, floor: float | None = None) -> float | None:
    if value is None or width is None or not isinstance(value, int | float):
        return None
    shifted = float(value) + sign * width
    return shifted if floor is None else max(shifted, floor)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's schema and policy (`Sandbox.describe`): shown as a table of its columns, with
    the title and description in the reader's language where the policy has them."""

    name: str
    title: str
    description: str
    owner: str
    public: bool
    privacy_unit: dict[str, Any] | None
    columns: dict[str, dict[str, Any]]
    limits: dict[str, Any]
    default_delta: float
    raw: dict[str, Any] = field(repr=False)
    lang: str = field(default_factory=_env_lang, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], lang: str | None = None) -> DatasetInfo:
        lang = lang or i18n.from_environment()
        return cls(name=data["name"], title=_localized(data, "title", lang),
                   description=_localized(data, "description", lang), owner=data.get("owner", ""),
                   public=bool(data.get("public")), privacy_unit=data.get("privacy_unit"),
                   columns=dict(data["columns"]), limits=dict(data.get("limits") or {}),
                   default_delta=data.get("default_delta", 0.0), raw=dict(data), lang=lang)

    def to_polars(self) -> pl.DataFrame:
        """One row per queryable column: role, type, public bounds and keys, nullability."""
        unit = (self.privacy_unit or {}).get("column")
        numbers = i18n.Numbers(self.lang)
        rows = [{"column": name, "role": "privacy unit" if name == unit else c["role"], "type": c["type"],
                 "bounds": _bounds(c.get("bounds"), numbers), "keys": _keys(c.get("keys"), self.lang),
                 "nullable": bool(c.get("nullable")), "description": c.get("description", "")}
                for name, c in self.columns.items()]
        return _frame(rows, ["column", "role", "type", "bounds", "keys", "nullable", "description"])

    def _summary(self) -> str:
        _ = _tr(self.lang).gettext
        if self.public:
            return _("public reference data: queried without noise")
        unit, limits = self.privacy_unit or {}, self.limits
        return _("privacy unit {unit}: at most {rows} row(s) in at most {groups} group(s) per query · ε per query ≤ "
                 "{cap} · counts below {min_count} suppressed, rounded to {round_to}").format(
            unit=unit.get("column"), rows=unit.get("max_rows"), groups=unit.get("max_groups"),
            cap=limits.get("max_epsilon_per_query"), min_count=limits.get("min_count", 0),
            round_to=limits.get("round_to", 1))

    def _repr_html_(self) -> str:
        _ = _tr(self.lang).gettext
        frame = self.to_polars()
        headers = [_("column"), _("role"), _("type"), _("bounds"), _("keys"), _("nullable"), _("description")]
        rows = [[f"<td>{html.escape(self._shown(v))}</td>" for v in row] for row in frame.rows()]
        return (f'<div class="sandbox-dataset"><h4>{html.escape(self.name)} — {html.escape(self.title)}</h4>'
                f"<p><small>{html.escape(self._summary())}</small></p>"
                + _table_html(headers, rows) + "</div>")

    def _shown(self, value: Any) -> str:
        if value == "privacy unit":
            return _tr(self.lang).gettext("privacy unit")
        return i18n.word(value, self.lang) if isinstance(value, str) else str(value)

    def __repr__(self) -> str:
        return f"{self.name} — {self.title}\n{self._summary()}\n{self.to_polars()}"


def _localized(data: Mapping[str, Any], name: str, lang: str) -> str:
    """A policy text in the reader's language: `<name>_zh` for Chinese readers when the policy has it."""
    if lang == "zh_CN" and data.get(f"{name}_zh"):
        return str(data[f"{name}_zh"])
    return str(data.get(name) or "")


def _bounds(bounds: Sequence[float | str] | None, numbers: i18n.Numbers) -> str:
    if not bounds:
        return ""
    if isinstance(bounds[0], str):  # a DATE dimension's published range
        return f"[{bounds[0]}, {bounds[1]}]"
    return f"[{numbers.value(float(bounds[0]))}, {numbers.value(float(bounds[1]))}]"


def _keys(keys: Sequence[Any] | None, lang: str) -> str:
    if not keys:
        return ""
    shown = ", ".join(str(k) for k in keys[:8])
    if len(keys) <= 8:
        return shown
    return shown + ", " + _tr(lang).gettext("… ({n} keys)").format(n=len(keys))


@dataclass(frozen=True)
class Explanation:
    """Cost and expected accuracy of a query before it runs (`Sandbox.explain`); free.

    `choices()` lists, per dataset, each contribution bound (`max_rows`) the query could ask for,
    with the noise it implies and the share of rows it is estimated to leave out; `warning()`
    is the sentence to read before spending when the group keys are private (a group needs about
    N units to be released)."""

    dataset: str
    epsilon: float
    delta: float
    columns: list[dict[str, Any]]
    primitives: list[dict[str, Any]]
    bounded_sql: str
    notes: list[str]
    group_count: int | None
    remaining_epsilon: float | None
    raw: dict[str, Any] = field(repr=False)
    lang: str = field(default_factory=_env_lang, repr=False, compare=False)
    note_details: list[dict[str, Any]] = field(default_factory=list)
    contribution_choices: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], remaining_epsilon: float | None = None,
                  lang: str | None = None) -> Explanation:
        return cls(dataset=data["dataset"], epsilon=data["epsilon"], delta=data["delta"], columns=list(data["columns"]),
                   primitives=list(data.get("primitives") or []), bounded_sql=data.get("bounded_sql", ""),
                   notes=list(data.get("notes") or []), group_count=data.get("group_count"),
                   remaining_epsilon=remaining_epsilon, raw=dict(data), lang=lang or i18n.from_environment(),
                   note_details=list(data.get("note_details") or []),
                   contribution_choices=list(data.get("contribution_choices") or []))

    def to_polars(self) -> pl.DataFrame:
        """Per output column: what it is and its expected 95% half-width (None: depends on data)."""
        mechanisms = {p["id"]: p.get("mechanism", p["kind"]) for p in self.primitives}
        rows = [{"column": c["name"], "kind": c["kind"], "function": c.get("function"),
                 "expected_half_width": c.get("half_width"),
                 "noise": ", ".join(sorted({mechanisms.get(p, p) for p in c.get("primitives", [])}))}
                for c in self.columns]
        return _frame(rows, ["column", "kind", "function", "expected_half_width", "noise"])

    def choices(self) -> pl.DataFrame:
        """Per dataset and `max_rows` the query could ask for (1 to the policy's ceiling): the
        expected 95% half-width of a COUNT, the estimated share of the dataset's rows left out
        (None: not estimated), and which one this query uses. Pick, then pass
        `max_rows={dataset: n}` to `query`."""
        rows = [{"dataset": c["dataset"], "max_rows": o["max_rows"], "count_half_width": o.get("count_half_width"),
                 "rows_left_out": o.get("rows_left_out"), "chosen": bool(o.get("chosen"))}
                for c in self.contribution_choices for o in c.get("options", [])]
        return _frame(rows, ["dataset", "max_rows", "count_half_width", "rows_left_out", "chosen"])

    def messages(self) -> list[tuple[bool, str]]:
        """What to know before spending, in `lang`: (is it a warning, text), warnings first."""
        return _messages(self.notes, self.note_details, self.lang)

    def warning(self) -> str | None:
        """The threshold sentence when the group keys are private, in `lang`; else None."""
        return _threshold_sentence(self.raw, self.lang)

    def summary(self) -> str:
        _ = _tr(self.lang).gettext
        numbers = i18n.Numbers(self.lang)
        text = _("{dataset}: this query would cost ε {epsilon}, δ {delta} (explain itself is free)").format(
            dataset=self.dataset, epsilon=numbers.epsilon(self.epsilon), delta=numbers.epsilon(self.delta))
        if self.group_count is not None:
            text += " · " + _("{n} public groups").format(n=numbers.count(self.group_count))
        if self.remaining_epsilon is not None:
            text += " · " + _("budget left now ε {left}").format(left=numbers.epsilon(self.remaining_epsilon))
        return text

    def expected(self) -> list[tuple[str, str, str]]:
        """(column, aggregate, expected 95% interval) as shown, one per output column."""
        _ = _tr(self.lang).gettext
        numbers = i18n.Numbers(self.lang)
        shown = []
        for c in self.columns:
            width = c.get("half_width")
            if width is not None:
                interval = "± " + numbers.estimate(width, width)[1]
            else:
                interval = _("depends on the data (shown with the release)") if c["kind"] != "key" else ""
            shown.append((str(c["name"]), c.get("function") or i18n.word(c["kind"], self.lang), interval))
        return shown

    def choice_rows(self) -> list[tuple[str, str, str, str]]:
        """(dataset, max_rows, expected ± of a COUNT, rows left out) as shown; the one this query
        uses is marked ✓."""
        numbers = i18n.Numbers(self.lang)
        shown = []
        for c in self.contribution_choices:
            for o in c.get("options", []):
                width = o.get("count_half_width")
                left = o.get("rows_left_out")
                shown.append((c["dataset"], numbers.count(o["max_rows"]) + (" ✓" if o.get("chosen") else ""),
                              "—" if width is None else "± " + numbers.estimate(width, width)[1],
                              "—" if left is None else notes_module.percent(left, self.lang)))
        return shown

    def choice_headers(self) -> list[str]:
        _ = _tr(self.lang).gettext
        return [_("dataset"), _("max_rows (rows per unit)"), _("COUNT's expected {level} interval").format(level="95%"),
                _("rows left out (estimated)")]

    def _repr_html_(self) -> str:
        _ = _tr(self.lang).gettext
        rows = [[f"<td>{html.escape(v)}</td>" for v in row] for row in self.expected()]
        folded = html.escape(_("bounded SQL"))
        parts = [f'<div class="sandbox-explain"><p>{html.escape(self.summary())}</p>',
                 _table_html([_("column"), _("aggregate"), _("expected {level} interval").format(level="95%")], rows),
                 _messages_html(self.messages())]
        if self.contribution_choices:
            choices = [[f"<td>{html.escape(v)}</td>" for v in row] for row in self.choice_rows()]
            title = html.escape(_("Contribution bounds this query could ask for (✓: used now)"))
            parts.append(f"<p><small>{title}</small></p>" + _table_html(self.choice_headers(), choices))
        parts.append(f"<details><summary>{folded}</summary><pre>{html.escape(self.bounded_sql)}</pre></details></div>")
        return "".join(parts)

    def __repr__(self) -> str:
        lines = [self.summary(), str(self.to_polars())]
        lines.extend(_message_line(warning, text) for warning, text in self.messages())
        if self.contribution_choices:
            lines.append(str(self.choices()))
        return "\n".join(lines)


@dataclass(frozen=True)
class Agreement:
    """A data-use agreement and its budget (`Sandbox.budget`, `agreement`, `approve`, ...)."""

    id: str
    status: str
    purpose: str
    datasets: dict[str, list[str] | None]
    valid_from: str
    valid_to: str
    budget_epsilon: float
    spent_epsilon: float
    remaining_epsilon: float
    budget_delta: float
    remaining_delta: float
    per_query_epsilon: float | None
    min_count: int
    round_to: int
    decision_reason: str | None
    raw: dict[str, Any] = field(repr=False)
    lang: str = field(default_factory=_env_lang, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], lang: str | None = None) -> Agreement:
        names = [f for f in cls.__dataclass_fields__ if f not in ("raw", "lang")]
        return cls(**{n: data.get(n) for n in names}, raw=dict(data), lang=lang or i18n.from_environment())

    def _repr_html_(self) -> str:
        share = self.spent_epsilon / self.budget_epsilon if self.budget_epsilon else 0.0
        bar = (f'<div style="width:240px;height:10px;background:#ddd"><div style="width:{min(share, 1) * 100:.0f}%;'
               f'height:10px;background:#1f77b4"></div></div>')
        rows = [[f"<td>{html.escape(k)}</td>", f"<td>{html.escape(v)}</td>"] for k, v in self.facts()]
        heading = _tr(self.lang).gettext("agreement")
        return f'<div class="sandbox-agreement">{bar}' + _table_html([heading, self.id], rows) + "</div>"

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) pairs as shown in the reader's language."""
        _ = _tr(self.lang).gettext
        n = i18n.Numbers(self.lang)
        rules = (_("counts below {n} suppressed").format(n=self.min_count) if self.min_count
                 else _("no minimum count"))
        if self.round_to > 1:
            rules += _(", rounded to {n}").format(n=self.round_to)
        return [(_("status"), i18n.word(self.status, self.lang)), (_("purpose"), self.purpose),
                (_("datasets"), ", ".join(self.datasets)),
                (_("valid"), _("{start} to {end}").format(start=self.valid_from, end=self.valid_to)),
                (_("ε left"), _("{left} of {budget} (spent {spent})").format(
                    left=n.epsilon(self.remaining_epsilon), budget=n.epsilon(self.budget_epsilon),
                    spent=n.epsilon(self.spent_epsilon))),
                (_("δ left"), _("{left} of {budget}").format(left=n.epsilon(self.remaining_delta),
                                                               budget=n.epsilon(self.budget_delta))),
                (_("ε per query"), _("no cap") if self.per_query_epsilon is None
                 else f"≤ {n.epsilon(self.per_query_epsilon)}"),
                (_("output rules"), rules + _(" (plus each dataset's own rules)"))]

    def __repr__(self) -> str:
        return f"Agreement {self.id}\n" + "\n".join(f"  {k}: {v}" for k, v in self.facts())


@dataclass(frozen=True)
class Verification:
    """The audit chain check (`Sandbox.verify`); true when every event's hash checks out."""

    ok: bool
    events: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0  # signed checkpoints of the head that check out
    last_checkpoint_seq: int | None = None
    last_checkpoint_ts: str | None = None
    unsigned_events: int = 0
    signing_key: str | None = None
    lang: str = field(default_factory=_env_lang, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], lang: str | None = None) -> Verification:
        """From `GET /audit/verify` (or the library's result): the fields this client knows; a
        newer server's extra fields are kept out rather than refused."""
        known = {n: data[n] for n in cls.__dataclass_fields__ if n != "lang" and n in data}
        return cls(**known, lang=lang or i18n.from_environment())

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        """One line: verified (events, head, checkpoints), or where the chain breaks and why."""
        _ = _tr(self.lang).gettext
        n = i18n.Numbers(self.lang)
        if self.ok:
            text = _("audit chain verified: {events} events, head {head}…").format(
                events=n.count(self.events), head=self.head_hash[:16])
            if not self.checkpoints:
                return text + "; " + _("no signed checkpoints yet")
            return text + "; " + _tr(self.lang).ngettext(
                "{n} signed checkpoint (the last at event {seq}, {ts}, key {key}…), {unsigned} events since",
                "{n} signed checkpoints (the last at event {seq}, {ts}, key {key}…), {unsigned} events since",
                self.checkpoints,
            ).format(n=n.count(self.checkpoints), seq=self.last_checkpoint_seq, ts=self.last_checkpoint_ts,
                     key=(self.signing_key or "?")[:16], unsigned=n.count(self.unsigned_events))
        if self.first_bad_seq is None:
            return _("audit checkpoints do not check out: {reason}").format(reason=self.reason or "")
        return _("audit chain broken at event {seq}: {reason}").format(seq=self.first_bad_seq,
                                                                        reason=self.reason or "")

    def _repr_html_(self) -> str:
        if self.ok:
            head = html.escape(self.head_hash[:16])
            text = html.escape(self.summary()).replace(f"{head}…", f"<code>{head}…</code>", 1)
            return f'<p class="sandbox-verify ok">✔ {text}</p>'
        return f'<p class="sandbox-verify broken">✘ {html.escape(self.summary())}</p>'


# -- the client --------------------------------------------------------------------------------
class Sandbox:
    """A connection to the sandbox as one account (developer, operator, auditor or admin).

    `url` and `token` default to the environment variables SANDBOX_URL and SANDBOX_TOKEN;
    `agreement` (default SANDBOX_AGREEMENT, else your only active agreement) is used by
    `query`, `explain` and `budget` when they are not given one. `lang` ("en" or "zh-CN";
    default SANDBOX_LANG, then the system's locale) is the language of the client's messages
    and tables, and is sent to the server as Accept-Language. `on_warning` receives what must be
    read before a query spends (default: printed on stderr, "⚠ ..."). `transport` is httpx's,
    for tests.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, agreement: str | None = None,
        timeout: float = 60.0, progress: bool = True, lang: str | None = None,
        on_warning: Callable[[str], None] | None = None, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.lang = i18n.choose(lang) if lang else i18n.from_environment()
        _ = self._t.gettext
        self.url = (url or os.environ.get("SANDBOX_URL") or "").rstrip("/")
        if not self.url:
            raise self._not_configured(_("No sandbox URL. Pass Sandbox(url, token) or set SANDBOX_URL (the demo "
                                         "serves http://127.0.0.1:8000)."))
        self._token_source = _("the token passed to Sandbox()") if token else "SANDBOX_TOKEN"
        token = token or os.environ.get("SANDBOX_TOKEN")
        if not token:
            raise self._not_configured(_("No token. Pass Sandbox(url, token) or set SANDBOX_TOKEN to the token your "
                                         "operator gave you (the demo's are in var/demo-tokens.json)."))
        self.default_agreement = agreement or os.environ.get("SANDBOX_AGREEMENT") or None
        self.progress = progress
        self.on_warning: Callable[[str], None] = on_warning or _print_warning
        try:
            self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport, headers={
                "Authorization": f"Bearer {token}", "User-Agent": f"xm-sandbox-client/{__version__}",
                "Accept-Language": i18n.TAGS[self.lang]})
        except (httpx.InvalidURL, ValueError, TypeError):
            raise self._not_configured(_("{url} is not a URL; write it like http://127.0.0.1:8000.").format(
                url=self.url)) from None
        self._policies: dict[str, dict[str, Any]] = {}

    @property
    def _t(self) -> Any:
        return i18n.translations(self.lang)

    def _not_configured(self, message: str) -> NotConfigured:
        error = NotConfigured(message)
        error.lang = self.lang
        return error

    def _unreachable(self, message: str, reason: str) -> SandboxUnreachable:
        error = SandboxUnreachable(message, url=self.url, reason=reason)
        error.lang = self.lang
        return error

    def __repr__(self) -> str:  # never the token
        return f"Sandbox({self.url!r}" + (f", agreement={self.default_agreement!r})" if self.default_agreement else ")")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None, raw: bool = False, response: bool = False) -> Any:
        try:
            answer = self._http.request(method, path, json=json_body, headers=headers,
                                        params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.TimeoutException:
            _ = self._t.gettext
            raise self._unreachable(_(
                "The sandbox at {url} did not answer {method} {path} in time. Check your network and that the server "
                "is not overloaded, then try again.").format(url=self.url, method=method, path=path),
                "timeout") from None
        except httpx.TransportError as exc:
            _ = self._t.gettext
            reason = f"{type(exc).__name__}: {exc}"
            raise self._unreachable(_(
                "Cannot reach the sandbox at {url} ({reason}). Check that it is running (`make demo` or `sandbox "
                "serve`) and that SANDBOX_URL points to it.").format(url=self.url, reason=reason), reason) from None
        if answer.status_code >= 400:
            raise self._error(answer)
        if response:
            return answer
        return answer.content if raw else answer.json()

    def _error(self, response: httpx.Response) -> SandboxError:
        try:
            body = response.json()["error"]
            code, message = str(body["code"]), str(body["message"])
        except (ValueError, KeyError, TypeError):
            return _remote_error("internal", self._t.gettext(
                "{url} answered HTTP {status} without the sandbox's error shape. Check that SANDBOX_URL points to the "
                "sandbox's API.").format(url=self.url, status=response.status_code), {"http_status":
                                                                                    response.status_code},
                response.status_code, self.lang)
        if code == "unauthorized":
            message += " " + self._t.gettext("(The client sent {source}; check it.)").format(source=self._token_source)
        fields = {k: v for k, v in body.items() if k not in ("code", "message")}
        return _remote_error(code, message, fields, response.status_code, self.lang)

    def raw(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
            total: bool = False) -> Any:
        """One API request and the server's JSON as it is (for scripts and the `sandbox` CLI);
        errors are raised like every other method's. `total`: (JSON, the X-Total-Count header)."""
        answer = self._call(method, path, params=params, json_body=json_body, response=True)
        if total:
            return answer.json(), int(answer.headers.get("X-Total-Count", "-1"))
        return answer.json()

    # -- everyone -----------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """The account behind the token: id, name, role."""
        return self._call("GET", "/me")

    def datasets(self) -> pl.DataFrame:
        """The catalog: one row per dataset with its privacy unit (schemas and policies, never rows)."""
        rows = []
        for d in self._call("GET", "/datasets"):
            unit = d.get("privacy_unit") or {}
            rows.append({"name": d["name"], "title": _localized(d, "title", self.lang), "public": bool(d.get("public")),
                         "privacy_unit": unit.get("column"), "max_rows": unit.get("max_rows"),
                         "columns": ", ".join(d["columns"]), "owner": d.get("owner", "")})
        return _frame(rows, ["name", "title", "public", "privacy_unit", "max_rows", "columns", "owner"])

    def describe(self, name: str) -> DatasetInfo:
        """One dataset's schema and policy: roles, types, public bounds and keys, limits."""
        data = self._call("GET", f"/datasets/{name}")
        self._policies[name] = data
        return DatasetInfo.from_json(data, self.lang)

    # -- developers: mock data -----------------------------------------------------------------
    def certificate(self, name: str) -> dict[str, Any]:
        """A dataset's signed data asset certificates (`certificates`, oldest first) and the public
        key (`public_key`, PEM) to verify them with `sandbox.certificates.verify`, offline."""
        return self._call("GET", f"/datasets/{name}/certificate")

    def mock(self, name: str, rows: int = 1000, *, seed: int = 0) -> pl.DataFrame:
        """Fake rows that follow the dataset's policy (types, bounds, public keys, the privacy
        unit), generated here from the catalog — never from real rows. For writing queries."""
        policy = self._policies.get(name) or self._call("GET", f"/datasets/{name}")
        self._policies[name] = policy
        return mock_frame(policy, rows=rows, seed=seed)

    def mock_query(self, sql: str, rows: int = 1000, *, seed: int = 0, check: bool = True) -> Release:
        """Run SQL locally (DuckDB, in this notebook) over `mock` rows: an exact answer over fake
        data, clearly labelled, costing nothing. With `check` the sandbox first says whether it
        would accept the SQL (a free explain), so a rejection shows up here, not when spending."""
        import duckdb
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.ParseError as exc:
            if check:  # the sandbox's own message says where
                self._call("POST", "/explain", json_body={"sql": sql, "epsilon": 0.1})
            raise _remote_error("sql_rejected", self._t.gettext("The SQL does not parse: {problem}. Fix its syntax.")
                                .format(problem=exc), {}, 400, self.lang) from None
        tables = sorted({t.name for t in tree.find_all(exp.Table)})
        # Output columns that aggregate nothing are the GROUP BY keys: shown as written (1980, not 1,980).
        keys = [p.alias_or_name for p in getattr(tree, "expressions", []) if not p.find(exp.AggFunc)]
        frames = {name: self.mock(name, rows=rows, seed=seed) for name in tables}
        if check:
            caps = [(self._policies[name].get("limits") or {}).get("max_epsilon_per_query", 1.0) for name in tables]
            self._call("POST", "/explain", json_body={"sql": sql, "epsilon": min([0.1, *caps])})
        con = duckdb.connect()
        try:
            for name, frame in frames.items():
                con.register(name, frame.to_arrow())
            con.execute("SET enable_external_access = false")
            table = pl.from_arrow(con.sql(sql).to_arrow_table())
        finally:
            con.close()
        values = [list(r) for r in table.rows()]
        return Release(columns=table.columns, rows=values, half_widths=[[None] * len(table.columns) for _ in values],
                       suppressed=[False] * len(values), sql=sql, mock=True, mock_rows=rows,
                       notes=[self._t.gettext("MOCK DATA — not real: generated from the policy, not from the data.")],
                       keys=[k for k in keys if k in table.columns], lang=self.lang)

    # -- developers: agreements and budget -----------------------------------------------------
    def request_agreement(
        self, *, purpose: str, legal_basis: str, datasets: Mapping[str, Sequence[str] | None] | Sequence[str],
        valid_from: str, valid_to: str, epsilon: float, delta: float = 1e-6,
    ) -> Agreement:
        """Ask an operator (and the data stewards of the datasets' owners) for a data-use agreement;
        `datasets` maps each dataset to the columns in scope (None: all), or is a list of dataset
        names. Being listed is a condition of access: once approved, the agreement's organisation,
        purpose, legal basis, datasets, validity, status, budget and number of releases are published
        in the public register (/register)."""
        scope = dict(datasets) if isinstance(datasets, Mapping) else {name: None for name in datasets}
        body = {"purpose": purpose, "legal_basis": legal_basis, "datasets": scope, "valid_from": valid_from,
                "valid_to": valid_to, "epsilon": epsilon, "delta": delta}
        return Agreement.from_json(self._call("POST", "/agreements", json_body=body), self.lang)

    def agreements(
        self, status: str | Sequence[str] | None = None, *, search: str | None = None,
        organisation: str | None = None, developer: str | None = None, dataset: str | None = None,
        purpose: str | None = None, decided: bool = False, decided_since: str | None = None,
        decided_until: str | None = None, limit: int | None = None,
    ) -> pl.DataFrame:
        """Agreements you may see (a developer's own; all for operators and auditors). With any
        filter, the history: `search` matches organisation, developer, dataset and purpose; the
        others narrow it (`decided`: only decided ones); newest decision first."""
        filters = {"status": [status] if isinstance(status, str) else status, "q": search,
                   "organisation": organisation, "developer": developer, "dataset": dataset, "purpose": purpose,
                   "decided": decided or None, "decided_since": decided_since, "decided_until": decided_until}
        history = any(v for k, v in filters.items() if k != "status")
        params = {k: v for k, v in filters.items() if v} | ({"order": "decided"} if history else {})
        rows: list[dict[str, Any]] = []
        while limit is None or len(rows) < limit:
            size = 1000 if limit is None else min(1000, limit - len(rows))
            page = self._call("GET", "/agreements", params=params | {"limit": size, "offset": len(rows)})
            rows += [a | {"datasets": ", ".join(a["datasets"])} for a in page]
            if len(page) < size:
                break
        return _frame(rows, ["id", "status", "developer_id", "developer_name", "organisation", "purpose", "datasets",
                             "budget_epsilon", "spent_epsilon", "remaining_epsilon", "per_query_epsilon",
                             "valid_from", "valid_to", "created_at", "decided_at"])

    def agreement(self, agreement_id: str | None = None) -> Agreement:
        return Agreement.from_json(self._call("GET", f"/agreements/{self._agreement(agreement_id)}"), self.lang)

    def budget(self, agreement: str | None = None) -> Agreement:
        """The budget of an agreement (default: yours): ε and δ spent and left, the per-query cap."""
        return self.agreement(agreement)

    def _agreement(self, agreement: str | None) -> str:
        chosen = agreement or self.default_agreement
        if chosen:
            return chosen
        active = [a["id"] for a in self._call("GET", "/agreements", params={"status": "active"})]
        if len(active) == 1:
            return active[0]
        _ = self._t.gettext
        raise self._not_configured(
            (_("You have no active agreement; request one with request_agreement(...).") if not active else
             _("You have {n} active agreements ({ids}); pick one with agreement=...").format(
                 n=len(active), ids=", ".join(active)))
            + " " + _("Or set SANDBOX_AGREEMENT, or pass Sandbox(agreement=...)."))

    # -- developers: explain and query ---------------------------------------------------------
    def explain(
        self, sql: str, *, epsilon: float, delta: float | None = None, agreement: str | None = None,
        max_rows: Mapping[str, int] | None = None, max_groups: int | None = None,
        clamp: Mapping[str, Sequence[float]] | None = None,
    ) -> Explanation:
        """What the query would cost and how accurate each column would be, what it would leave
        out, and the noise of each contribution bound it could ask for (`.choices()`); spends
        nothing. `max_rows`, `max_groups` and `clamp` as for `query`."""
        agreement_id = agreement or self.default_agreement
        body = {"sql": sql, "epsilon": epsilon, "delta": delta, "agreement_id": agreement_id,
                "contribution": contribution(max_rows, max_groups, clamp, lang=self.lang)}
        data = self._call("POST", "/explain", json_body=_without_none(body))
        left = self.agreement(agreement_id).remaining_epsilon if agreement_id else None
        return Explanation.from_json(data, left, self.lang)

    def query(
        self, sql: str, *, epsilon: float, delta: float | None = None, agreement: str | None = None,
        max_rows: Mapping[str, int] | None = None, max_groups: int | None = None,
        clamp: Mapping[str, Sequence[float]] | None = None, warn: bool = True,
        progress: bool | Callable[[dict[str, Any]], None] | None = None, poll: float = 2.0,
    ) -> Release:
        """Run SQL in the sandbox under an agreement, spending `epsilon`; returns the release.

        Contribution bounds, within the policies' ceilings (`explain(...).choices()` shows what
        each costs and leaves out): `max_rows={"medical_visits": 10}` rows per unit of a
        dataset, `max_groups=6` groups one unit may reach, `clamp={"residents.monthly_income":
        (0, 50000)}` tighter bounds for a measure. Less noise, more left out.

        With `warn` (the default) a grouped query is explained first (free, and audited like any
        explain): when its group keys are private, `on_warning` gets the sentence saying how
        large a group must be to appear, and the query then runs.

        The call waits for the job. If it takes longer than `poll` seconds a progress bar is
        shown (`progress=False` hides it; a callable is called with the job instead). Ctrl-C
        cancels the job on the server and raises `JobCancelled`.
        """
        asked = contribution(max_rows, max_groups, clamp, lang=self.lang)
        agreement_id = self._agreement(agreement)
        body = _without_none({"sql": sql, "epsilon": epsilon, "delta": delta, "agreement_id": agreement_id,
                              "contribution": asked})
        if warn and _GROUPED.search(sql):  # only groups can be held back by a threshold
            self._warn_first(body)
        body = body | {"wait": poll}
        key = str(uuid.uuid4())  # a replay with this key returns the same job, charged once
        try:
            job = self._call("POST", "/jobs", json_body=body, headers={"Idempotency-Key": key})
        except KeyboardInterrupt:  # the job may exist already: find it by its key and cancel it
            job = self._call("POST", "/jobs", json_body=body | {"wait": 0}, headers={"Idempotency-Key": key})
            self._interrupted(job)
        job = self._follow(job, self.progress if progress is None else progress, poll)
        return self._release(job)

    def _warn_first(self, body: Mapping[str, Any]) -> None:
        """Explain the query (free) and say, before it spends, that its groups may be missing."""
        try:
            plan = self._call("POST", "/explain", json_body=dict(body))
        except SandboxError:  # refused or unreachable: the job's own answer says so
            return
        sentence = _threshold_sentence(plan, self.lang) if isinstance(plan, Mapping) else None
        if sentence:
            numbers = i18n.Numbers(self.lang)
            self.on_warning(self._t.gettext("Before this query spends ε {epsilon}: {warning}").format(
                epsilon=numbers.epsilon(body["epsilon"]), warning=sentence))

    def _follow(self, job: dict[str, Any], progress: bool | Callable[[dict[str, Any]], None],
                poll: float) -> dict[str, Any]:
        with _Progress(job, progress, self.lang) as bar:
            try:
                while job["status"] not in _FINAL:
                    bar.update(job)
                    job = self._call("GET", f"/jobs/{job['id']}", params={"wait": max(poll, 0.5)})
            except KeyboardInterrupt:
                self._interrupted(job)
        return job

    def _cancelled(self, message: str, **fields: Any) -> JobCancelled:
        error = JobCancelled(message, **fields)
        error.lang = self.lang
        return error

    def _interrupted(self, job: Mapping[str, Any]) -> None:
        _ = self._t.gettext
        final = job if job["status"] in _FINAL else self.cancel(job["id"])
        if final["status"] != "cancelled":
            raise self._cancelled(_("Interrupted, but job {job} had already finished ({status}); sb.release({ref}) "
                                    "returns it.").format(job=job["id"], status=i18n.word(final["status"], self.lang),
                                                          ref=repr(job["id"])), job_id=job["id"]) from None
        kept = final.get("charge_epsilon", 0) > 0
        raise self._cancelled(
            _("Job {job} cancelled on the server at your request.").format(job=job["id"]) + " "
            + (_("It had started, so its charge of ε {epsilon} is kept.").format(
                epsilon=i18n.Numbers(self.lang).epsilon(final["charge_epsilon"]))
               if kept else _("It had not started, so nothing was charged.")),
            job_id=job["id"], charge_epsilon=final.get("charge_epsilon", 0)) from None

    def _release(self, job: Mapping[str, Any]) -> Release:
        status = job["status"]
        if status == "released":
            budget = self._call("GET", f"/agreements/{job['agreement_id']}")
            return Release.from_job(job, budget, self.lang)
        if status == "cancelled":
            raise self._cancelled(self._t.gettext("Job {job} was cancelled.").format(job=job["id"]), job_id=job["id"])
        error = dict(job.get("error") or {})
        code = error.pop("code", "query_failed")
        message = error.pop("message", None) or self._t.gettext("Job {job} {status}.").format(
            job=job["id"], status=i18n.word(status, self.lang))
        raise _remote_error(code, message, error | {"job_id": job["id"]}, 500, self.lang)

    def jobs(self, agreement: str | None = None, limit: int = 100) -> pl.DataFrame:
        """Your jobs, newest first (all jobs for auditors)."""
        rows = self._call("GET", "/jobs", params={"agreement_id": agreement, "limit": limit})
        return _frame(rows, ["id", "status", "dataset", "epsilon", "charge_epsilon", "reused", "agreement_id",
                             "created_at", "finished_at", "sql"])

    def job(self, job_id: str) -> dict[str, Any]:
        """One job as the server has it: status, SQL, charge, error or result."""
        return self._call("GET", f"/jobs/{job_id}")

    def release(self, job_id: str, *, poll: float = 2.0) -> Release:
        """The release of an earlier job (waiting for it if it is still running)."""
        job = self._follow(self.job(job_id), self.progress, poll)
        return self._release(job)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job: refunded if it had not started, else its charge is kept."""
        return self._call("POST", f"/jobs/{job_id}/cancel")

    # -- operators -----------------------------------------------------------------------------
    def license_developer(self, *, name: str, organisation: str, licence_number: str, valid_from: str,
                          valid_to: str) -> dict[str, Any]:
        """License a developer (operators); the answer holds their token, shown once."""
        body = {"name": name, "organisation": organisation, "licence_number": licence_number,
                "valid_from": valid_from, "valid_to": valid_to}
        return self._call("POST", "/licences", json_body=body)

    def licences(self) -> pl.DataFrame:
        return _frame(self._call("GET", "/licences"), ["id", "user_id", "organisation", "licence_number", "status",
                                                        "valid_from", "valid_to", "created_at"])

    def suspend_licence(self, licence_id: str, reason: str) -> dict[str, Any]:
        """Suspend a licence (operators): the developer's jobs are refused, with this reason."""
        return self._call("POST", f"/licences/{licence_id}/suspend", json_body={"reason": reason})

    def reinstate_licence(self, licence_id: str, reason: str) -> dict[str, Any]:
        """Make a suspended licence active again (operators), with a reason."""
        return self._call("POST", f"/licences/{licence_id}/reinstate", json_body={"reason": reason})

    def approve(
        self, agreement_id: str, *, epsilon: float | None = None, delta: float | None = None,
        per_query_epsilon: float | None = None, datasets: Mapping[str, Sequence[str] | None] | None = None,
        valid_to: str | None = None, min_count: int = 0, round_to: int = 1, reason: str = "",
    ) -> Agreement:
        """Approve a requested agreement (operators), possibly with less budget or scope."""
        body = {"epsilon": epsilon, "delta": delta, "per_query_epsilon": per_query_epsilon,
                "datasets": dict(datasets) if datasets is not None else None, "valid_to": valid_to,
                "min_count": min_count, "round_to": round_to, "reason": reason}
        return Agreement.from_json(self._call("POST", f"/agreements/{agreement_id}/approve", json_body=body), self.lang)

    def amend(
        self, agreement_id: str, *, reason: str, epsilon: float | None = None, epsilon_add: float | None = None,
        delta: float | None = None, delta_add: float | None = None, per_query_epsilon: float | None = None,
        valid_to: str | None = None, datasets: Mapping[str, Sequence[str] | None] | Sequence[str] | None = None,
    ) -> Agreement:
        """Amend an agreement in force, spent or expired (operators), with a reason: a new total
        budget (`epsilon`, `delta`) or a top-up (`epsilon_add`, `delta_add`), a later end
        (`valid_to`), a per-query cap, a scope within what was requested (`datasets`: dataset ->
        columns, None for the columns requested; or a list of dataset names)."""
        scope = None if datasets is None else (
            {name: None if cols is None else list(cols) for name, cols in datasets.items()}
            if isinstance(datasets, Mapping) else dict.fromkeys(datasets))
        body = {"epsilon": epsilon, "epsilon_add": epsilon_add, "delta": delta, "delta_add": delta_add,
                "per_query_epsilon": per_query_epsilon, "valid_to": valid_to, "datasets": scope}
        body = {k: v for k, v in body.items() if v is not None} | {"reason": reason}
        return Agreement.from_json(self._call("POST", f"/agreements/{agreement_id}/amend", json_body=body), self.lang)

    def reject(self, agreement_id: str, reason: str) -> Agreement:
        """Reject a requested agreement with a reason the developer and auditors will read."""
        return self._decide(agreement_id, "reject", reason)

    def revoke(self, agreement_id: str, reason: str) -> Agreement:
        """Revoke an active agreement; its jobs stop at once."""
        return self._decide(agreement_id, "revoke", reason)

    def _decide(self, agreement_id: str, action: str, reason: str) -> Agreement:
        return Agreement.from_json(self._call("POST", f"/agreements/{agreement_id}/{action}",
                                              json_body={"reason": reason}), self.lang)

    def create_user(self, name: str, role: str, organisation: str | None = None) -> dict[str, Any]:
        """Create an operator, auditor or data steward (admins; a steward needs the `organisation`
        their datasets' policies name as owner); the answer holds the token, shown once."""
        return self._call("POST", "/users", json_body=_without_none(
            {"name": name, "role": role, "organisation": organisation}))

    # -- data stewards -------------------------------------------------------------------------
    def parts(self, status: str | None = None) -> list[dict[str, Any]]:
        """The parts of agreements that use your organisation's datasets (stewards), newest request
        first; `status` ("pending", "approved", "rejected", "delegated"): only those."""
        return self._call("GET", "/stewardship/parts", params=_without_none({"status": status}))

    def approve_part(self, agreement_id: str, dataset: str, *, epsilon: float | None = None,
                     columns: Sequence[str] | None = None, valid_to: str | None = None,
                     min_count: int | None = None, round_to: int | None = None, reason: str = "") -> dict[str, Any]:
        """Approve your dataset's part of a request (stewards), possibly with a budget of its own
        (`epsilon`), fewer `columns`, an earlier end (`valid_to`), or output rules of your own for
        every query that reads it (`min_count`, `round_to`)."""
        body = _without_none({"epsilon": epsilon, "columns": list(columns) if columns is not None else None,
                              "valid_to": valid_to, "min_count": min_count, "round_to": round_to}) | {"reason": reason}
        return self._call("POST", f"/agreements/{agreement_id}/datasets/{dataset}/approve", json_body=body)

    def reject_part(self, agreement_id: str, dataset: str, reason: str) -> dict[str, Any]:
        """Reject your dataset's part (stewards): the request is rejected, with your reason."""
        return self._call("POST", f"/agreements/{agreement_id}/datasets/{dataset}/reject",
                          json_body={"reason": reason})

    def suspend_dataset(self, dataset: str, reason: str, agreement: str | None = None) -> list[dict[str, Any]]:
        """Stop the use of your dataset under one agreement, or all of them (stewards), from the
        next job on; returns the parts suspended."""
        return self._call("POST", f"/datasets/{dataset}/suspend",
                          json_body=_without_none({"reason": reason, "agreement_id": agreement}))

    def resume_dataset(self, dataset: str, reason: str, agreement: str | None = None) -> list[dict[str, Any]]:
        """Lift a suspension of your dataset (one agreement, or all)."""
        return self._call("POST", f"/datasets/{dataset}/resume",
                          json_body=_without_none({"reason": reason, "agreement_id": agreement}))

    # -- auditors ------------------------------------------------------------------------------
    def audit(
        self, *, actor: str | None = None, agreement: str | None = None, dataset: str | None = None,
        action: str | None = None, outcome: str | None = None, job: str | None = None, since: str | None = None,
        until: str | None = None, limit: int | None = 10_000,
    ) -> pl.DataFrame:
        """Audit events, newest first, filtered on the server; `details` is JSON text, and the
        charge and SQL of job events are lifted into their own columns."""
        filters = _audit_filters(actor, agreement, dataset, action, outcome, job, since, until)
        rows = []
        for event in self._events(filters, limit):
            details = event.get("details") or {}
            charge = details.get("charge_epsilon")
            rows.append(event | {"details": json.dumps(details, sort_keys=True, default=str),
                                 "charge_epsilon": float(charge) if isinstance(charge, int | float) else None,
                                 "sql": details.get("sql")})
        frame = _frame(rows, ["seq", "ts", "actor", "role", "action", "outcome", "agreement_id", "dataset", "job_id",
                              "charge_epsilon", "sql", "details", "hash"])
        if rows:
            frame = frame.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
        return frame

    def _events(self, filters: Mapping[str, Any], limit: int | None) -> Iterator[dict[str, Any]]:
        offset = 0
        while limit is None or offset < limit:
            size = 1000 if limit is None else min(1000, limit - offset)
            page = self._call("GET", "/audit", params={**filters, "limit": size, "offset": offset})
            yield from page["events"]
            offset += len(page["events"])
            if not page["events"] or offset >= page["total"]:
                return

    def verify(self) -> Verification:
        """Recompute the audit log's hash chain on the server (auditors)."""
        return Verification.from_json(self._call("GET", "/audit/verify"), self.lang)

    def export(
        self, format: str = "jsonl", *, actor: str | None = None, agreement: str | None = None,
        dataset: str | None = None, action: str | None = None, outcome: str | None = None, job: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> bytes:
        """The log (filtered like `audit`) as CSV, Parquet or JSONL bytes; the export is itself audited."""
        filters = _audit_filters(actor, agreement, dataset, action, outcome, job, since, until)
        return self._call("GET", "/audit/export", params={"format": format, **filters}, raw=True)


def _without_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _print_warning(text: str) -> None:
    print(f"⚠ {text}", file=sys.stderr, flush=True)


def _invalid(message: str, parameter: str, lang: str | None) -> SandboxError:
    return _remote_error("invalid_parameter", message, {"parameter": parameter}, 422, lang)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def contribution(
    max_rows: Mapping[str, int] | None = None, max_groups: int | None = None,
    clamp: Mapping[str, Sequence[float]] | None = None, *, lang: str | None = None,
) -> dict[str, Any] | None:
    """The request's `contribution` from `query`'s arguments (None when none is given). The
    server checks them against the policies' ceilings; a value of the wrong shape is refused
    here, in one line that shows the shape (`InvalidParameter`)."""
    _ = _tr(lang).gettext
    asked: dict[str, Any] = {}
    if max_rows is not None:
        if not isinstance(max_rows, Mapping) or not max_rows:
            raise _invalid(_("max_rows takes the rows per unit by dataset, e.g. max_rows={example} (got {got}).")
                           .format(example='{"medical_visits": 10}', got=repr(max_rows)), "max_rows", lang)
        for name, rows in max_rows.items():
            if not _whole(rows):
                raise _invalid(_("max_rows for {dataset} must be a whole number of at least 1 (got {got}).")
                               .format(dataset=name, got=repr(rows)), "max_rows", lang)
        asked["max_rows"] = {str(name): rows for name, rows in max_rows.items()}
    if max_groups is not None:
        if not _whole(max_groups):
            raise _invalid(_("max_groups must be a whole number of at least 1 (got {got}).").format(
                got=repr(max_groups)), "max_groups", lang)
        asked["max_groups"] = max_groups
    if clamp is not None:
        if not isinstance(clamp, Mapping) or not clamp:
            raise _invalid(_("clamp takes low and high bounds by dataset.column, e.g. clamp={example} (got {got}).")
                           .format(example='{"residents.monthly_income": (0, 50000)}', got=repr(clamp)), "clamp", lang)
        asked["clamp"] = {}
        for name, bounds in clamp.items():
            ok = (isinstance(name, str) and "." in name and isinstance(bounds, Sequence) and not isinstance(bounds, str)
                  and len(bounds) == 2 and all(_number(b) and math.isfinite(b) for b in bounds)
                  and bounds[0] < bounds[1])
            if not ok:
                raise _invalid(_("clamp for {column} must be two numbers, low below high, under a dataset.column name, "
                                 "e.g. clamp={example} (got {got}).").format(
                    column=name, example='{"residents.monthly_income": (0, 50000)}', got=repr(bounds)), "clamp", lang)
            asked["clamp"][name] = [bounds[0], bounds[1]]
    return asked or None


def parse_contribution(max_rows: Sequence[str] = (), max_groups: int | None = None, clamp: Sequence[str] = (),
                       *, lang: str | None = None) -> dict[str, Any]:
    """`query`'s keyword arguments from command-line text, as `%%dpsql` and `sandbox query` take
    them: `--max-rows DATASET=ROWS` (repeated, or comma-separated), `--max-groups N`, `--clamp
    DATASET.COLUMN=LOW,HIGH` (repeated). A malformed value is one line that shows the form."""
    _ = _tr(lang).gettext
    rows: dict[str, int] = {}
    for text in max_rows:
        for item in str(text).split(","):
            name, sep, value = item.partition("=")
            if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
                raise _invalid(_("--max-rows takes DATASET=ROWS, a whole number of rows per unit, e.g. --max-rows "
                                 "medical_visits=10 (got {got}).").format(got=repr(text)), "max_rows", lang)
            rows[name.strip()] = int(value)
    bounds: dict[str, tuple[float, float]] = {}
    for text in clamp:
        name, sep, value = str(text).partition("=")
        low, comma, high = value.partition(",")
        try:
            pair = (float(low), float(high)) if sep and comma and "." in name else None
        except ValueError:
            pair = None
        if pair is None or not all(math.isfinite(b) for b in pair) or pair[0] >= pair[1]:
            raise _invalid(_("--clamp takes DATASET.COLUMN=LOW,HIGH with LOW below HIGH, e.g. --clamp "
                             "residents.monthly_income=0,50000 (got {got}).").format(got=repr(text)), "clamp", lang)
        bounds[name.strip()] = (_plain(pair[0]), _plain(pair[1]))
    if max_groups is not None and not _whole(max_groups):
        raise _invalid(_("--max-groups takes a whole number of at least 1, e.g. --max-groups 6 (got {got}).").format(
            got=repr(max_groups)), "max_groups", lang)
    return {"max_rows": rows or None, "max_groups": max_groups, "clamp": bounds or None}


def _plain(number: float) -> float | int:
    """50000.0 -> 50000: what the user wrote, in the request and in the audit log."""
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _audit_filters(actor: str | None, agreement: str | None, dataset: str | None, action: str | None,
                   outcome: str | None, job: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    return {"actor": actor, "agreement_id": agreement, "dataset": dataset, "action": action, "outcome": outcome,
            "job_id": job, "since": since, "until": until}


class _Progress:
    """A tqdm bar for jobs still running after the first wait; a callable replaces it."""

    def __init__(self, job: Mapping[str, Any], progress: bool | Callable[[dict[str, Any]], None],
                 lang: str = i18n.DEFAULT) -> None:
        self.progress, self.bar, self.started, self.lang = progress, None, time.monotonic(), lang

    def update(self, job: dict[str, Any]) -> None:
        if callable(self.progress):
            self.progress(job)
            return
        if not self.progress:
            return
        if self.bar is None:
            with warnings.catch_warnings():  # without ipywidgets tqdm.auto falls back to text, with a warning
                warnings.simplefilter("ignore")
                from tqdm.auto import tqdm
            self.bar = tqdm(total=None, bar_format="{desc} {elapsed}", leave=False)
        self.bar.set_description_str(i18n.translations(self.lang).gettext("job {job} {status} (Ctrl-C cancels)").format(
            job=job["id"][:8], status=i18n.word(job["status"], self.lang)))
        self.bar.refresh()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
