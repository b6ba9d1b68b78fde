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
import textwrap
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl

from sandbox import __version__
from sandbox import errors as _errors
from sandbox.errors import SandboxError
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
_MAX_HTML_ROWS = 60


# -- errors ------------------------------------------------------------------------------------
class _Short:
    """Short messages: the pointer under the SQL in `str()`, no traceback in IPython."""

    message: str
    fields: dict[str, Any]

    def __str__(self) -> str:
        pointer = self.fields.get("pointer")
        return self.message + ("\n" + textwrap.indent(pointer, "    ") if pointer else "")

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {first}", *rest]


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


def _remote_error(code: str, message: str, fields: dict[str, Any], status: int) -> SandboxError:
    cls = _REMOTE.get(code, _REMOTE["internal"])
    err = cls.__new__(cls)
    SandboxError.__init__(err, message, **fields)
    if cls.code != code:  # e.g. the API's `invalid_request`
        err.code, err.status = code, status  # type: ignore[misc]
    return err


# -- results -----------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.6g}" if abs(value) >= 1e-3 else f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


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


@dataclass(frozen=True)
class Release:
    """What a query returns: noisy values, a 95% interval half-width per cell (None where the
    sandbox has none), suppressed rows, the charge, and the budget left afterwards.

    A mock release (`Sandbox.mock_query`) has the same shape, `mock=True`, exact values over
    fake rows, no intervals and no charge; it says so wherever it is shown.
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

    @classmethod
    def from_job(cls, job: Mapping[str, Any], agreement: Mapping[str, Any] | None = None) -> Release:
        result = job["result"]
        return cls(
            columns=list(result["columns"]), rows=[list(r) for r in result["rows"]],
            half_widths=[list(h) for h in result["half_widths"]], suppressed=list(result["suppressed"]),
            epsilon=result["epsilon"], delta=result["delta"], charge_epsilon=job["charge_epsilon"],
            charge_delta=job["charge_delta"], reused=job["reused"], job_id=job["id"],
            agreement_id=job["agreement_id"], sql=job["sql"],
            remaining_epsilon=agreement["remaining_epsilon"] if agreement else None,
            budget_epsilon=agreement["budget_epsilon"] if agreement else None,
            notes=list(result.get("notes") or []), columns_noise=list(result.get("columns_noise") or []),
        )

    # -- tables --------------------------------------------------------------------------------
    def to_polars(self, intervals: bool = False) -> pl.DataFrame:
        """The released values; with `intervals=True` also `<col>_lo`/`<col>_hi` (95%) for every
        column that has intervals, and a `suppressed` flag."""
        frame = pl.DataFrame(self.rows, schema=self.columns, orient="row", infer_schema_length=None)
        if not intervals:
            return frame
        extra: list[pl.Series] = []
        for j, name in enumerate(self.columns):
            widths = [row[j] for row in self.half_widths]
            if all(w is None for w in widths):
                continue
            values = [row[j] for row in self.rows]
            extra.append(pl.Series(f"{name}_lo", [_shift(v, w, -1) for v, w in zip(values, widths, strict=True)],
                                   dtype=pl.Float64))
            extra.append(pl.Series(f"{name}_hi", [_shift(v, w, 1) for v, w in zip(values, widths, strict=True)],
                                   dtype=pl.Float64))
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
        """95% half-widths of one column, e.g. for matplotlib's `yerr`."""
        j = self.columns.index(column)
        return [row[j] for row in self.half_widths]

    def __len__(self) -> int:
        return len(self.rows)

    # -- display -------------------------------------------------------------------------------
    def _cell(self, i: int, j: int) -> str:
        value, width = self.rows[i][j], self.half_widths[i][j]
        if self.suppressed[i] and value is None:
            return '<td class="suppressed" title="suppressed: below the minimum count">suppressed</td>'
        text = html.escape(_fmt(value))
        if width is not None and value is not None:
            text += f' <span class="pm">± {html.escape(_fmt(_round_width(width)))}</span>'
        return f"<td>{text}</td>"

    def footer(self) -> str:
        if self.mock:
            return f"exact answer over {self.mock_rows:,} fake rows per dataset; nothing spent"
        parts = [f"ε {self.charge_epsilon:g} charged" + (" (reused: same query, no charge)" if self.reused else "")]
        if self.charge_delta:
            parts.append(f"δ {self.charge_delta:g}")
        if self.remaining_epsilon is not None:
            parts.append(f"budget left ε {self.remaining_epsilon:g}"
                         + (f" of {self.budget_epsilon:g}" if self.budget_epsilon is not None else ""))
        parts.append("± is the 95% interval half-width")
        if any(self.suppressed):
            parts.append(f"{sum(self.suppressed)} row(s) suppressed")
        return " · ".join(parts)

    def _repr_html_(self) -> str:
        shown = range(min(len(self.rows), _MAX_HTML_ROWS))
        rows = [[self._cell(i, j) for j in range(len(self.columns))] for i in shown]
        classes = ["suppressed" if self.suppressed[i] else "" for i in shown]
        parts = [f'<div class="sandbox-release{" sandbox-mock" if self.mock else ""}">']
        if self.mock:
            parts.append('<div class="sandbox-banner" style="background:#b00020;color:white;font-weight:bold;'
                         'padding:4px 8px">MOCK DATA — not real</div>')
        parts.append(_table_html(self.columns, rows, row_classes=classes))
        if len(self.rows) > _MAX_HTML_ROWS:
            parts.append(f"<p>… {len(self.rows) - _MAX_HTML_ROWS} more rows: use .to_polars()</p>")
        parts.append(f'<p class="sandbox-footer"><small>{html.escape(self.footer())}</small></p>')
        parts.extend(f'<p class="sandbox-note"><small>{html.escape(note)}</small></p>' for note in self.notes)
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        head = "MOCK DATA — not real\n" if self.mock else ""
        lines = [" | ".join(self.columns)]
        for i, row in enumerate(self.rows[:20]):
            cells = ["suppressed" if self.suppressed[i] and v is None else
                     _fmt(v) + (f" ± {_fmt(_round_width(w))}" if w is not None and v is not None else "")
                     for v, w in zip(row, self.half_widths[i], strict=True)]
            lines.append(" | ".join(cells))
        if len(self.rows) > 20:
            lines.append(f"… {len(self.rows) - 20} more rows")
        return f"{head}Release({len(self.rows)} rows)\n" + "\n".join(lines) + f"\n({self.footer()})"


def _shift(value: Any, width: float | None, sign: int) -> float | None:
    if value is None or width is None or not isinstance(value, int | float):
        return None
    return float(value) + sign * width


def _round_width(width: float) -> float:
    """Two significant digits: an interval's width is itself an estimate."""
    if width == 0 or not math.isfinite(width):
        return width
    digits = 1 - int(math.floor(math.log10(abs(width))))
    return round(width, digits)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's schema and policy (`Sandbox.describe`): shown as a table of its columns."""

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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetInfo:
        return cls(name=data["name"], title=data.get("title", ""), description=data.get("description", ""),
                   owner=data.get("owner", ""), public=bool(data.get("public")),
                   privacy_unit=data.get("privacy_unit"), columns=dict(data["columns"]),
                   limits=dict(data.get("limits") or {}), default_delta=data.get("default_delta", 0.0), raw=dict(data))

    def to_polars(self) -> pl.DataFrame:
        """One row per queryable column: role, type, public bounds and keys, nullability."""
        unit = (self.privacy_unit or {}).get("column")
        rows = [{"column": name, "role": "privacy unit" if name == unit else c["role"], "type": c["type"],
                 "bounds": _bounds(c.get("bounds")), "keys": _keys(c.get("keys")),
                 "nullable": bool(c.get("nullable")), "description": c.get("description", "")}
                for name, c in self.columns.items()]
        return _frame(rows, ["column", "role", "type", "bounds", "keys", "nullable", "description"])

    def _summary(self) -> str:
        if self.public:
            return "public reference data: queried without noise"
        unit, limits = self.privacy_unit or {}, self.limits
        return (f"privacy unit {unit.get('column')}: at most {unit.get('max_rows')} row(s) in at most "
                f"{unit.get('max_groups')} group(s) per query · ε per query ≤ {limits.get('max_epsilon_per_query')}"
                f" · counts below {limits.get('min_count', 0)} suppressed, rounded to {limits.get('round_to', 1)}")

    def _repr_html_(self) -> str:
        frame = self.to_polars()
        rows = [[f"<td>{html.escape(str(v))}</td>" for v in row] for row in frame.rows()]
        return (f'<div class="sandbox-dataset"><h4>{html.escape(self.name)} — {html.escape(self.title)}</h4>'
                f"<p><small>{html.escape(self._summary())}</small></p>"
                + _table_html(frame.columns, rows) + "</div>")

    def __repr__(self) -> str:
        return f"{self.name} — {self.title}\n{self._summary()}\n{self.to_polars()}"


def _bounds(bounds: Sequence[float | str] | None) -> str:
    if not bounds:
        return ""
    if isinstance(bounds[0], str):  # a DATE dimension's published range
        return f"[{bounds[0]}, {bounds[1]}]"
    return f"[{_fmt(float(bounds[0]))}, {_fmt(float(bounds[1]))}]"


def _keys(keys: Sequence[Any] | None) -> str:
    if not keys:
        return ""
    shown = ", ".join(str(k) for k in keys[:8])
    return shown + (f", … ({len(keys)} keys)" if len(keys) > 8 else "")


@dataclass(frozen=True)
class Explanation:
    """Cost and expected accuracy of a query before it runs (`Sandbox.explain`); free."""

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

    @classmethod
    def from_json(cls, data: Mapping[str, Any], remaining_epsilon: float | None = None) -> Explanation:
        return cls(dataset=data["dataset"], epsilon=data["epsilon"], delta=data["delta"], columns=list(data["columns"]),
                   primitives=list(data.get("primitives") or []), bounded_sql=data.get("bounded_sql", ""),
                   notes=list(data.get("notes") or []), group_count=data.get("group_count"),
                   remaining_epsilon=remaining_epsilon, raw=dict(data))

    def to_polars(self) -> pl.DataFrame:
        """Per output column: what it is and its expected 95% half-width (None: depends on data)."""
        mechanisms = {p["id"]: p.get("mechanism", p["kind"]) for p in self.primitives}
        rows = [{"column": c["name"], "kind": c["kind"], "function": c.get("function"),
                 "expected_half_width": c.get("half_width"),
                 "noise": ", ".join(sorted({mechanisms.get(p, p) for p in c.get("primitives", [])}))}
                for c in self.columns]
        return _frame(rows, ["column", "kind", "function", "expected_half_width", "noise"])

    def _summary(self) -> str:
        text = f"{self.dataset}: this query would cost ε {self.epsilon:g}, δ {self.delta:g} (explain itself is free)"
        if self.group_count is not None:
            text += f" · {self.group_count} public groups"
        if self.remaining_epsilon is not None:
            text += f" · budget left now ε {self.remaining_epsilon:g}"
        return text

    def _repr_html_(self) -> str:
        rows = []
        for c in self.columns:
            width = c.get("half_width")
            shown = ("± " + _fmt(_round_width(width))) if width is not None else (
                "depends on the data (shown with the release)" if c["kind"] != "key" else "")
            rows.append([f"<td>{html.escape(str(c['name']))}</td>",
                         f"<td>{html.escape(c.get('function') or c['kind'])}</td>", f"<td>{html.escape(shown)}</td>"])
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        return (f'<div class="sandbox-explain"><p>{html.escape(self._summary())}</p>'
                + _table_html(["column", "aggregate", "expected 95% interval"], rows) + notes
                + f"<details><summary>bounded SQL</summary><pre>{html.escape(self.bounded_sql)}</pre></details></div>")

    def __repr__(self) -> str:
        return f"{self._summary()}\n{self.to_polars()}"


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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Agreement:
        names = [f for f in cls.__dataclass_fields__ if f != "raw"]
        return cls(**{n: data.get(n) for n in names}, raw=dict(data))

    def _repr_html_(self) -> str:
        share = self.spent_epsilon / self.budget_epsilon if self.budget_epsilon else 0.0
        bar = (f'<div style="width:240px;height:10px;background:#ddd"><div style="width:{min(share, 1) * 100:.0f}%;'
               f'height:10px;background:#1f77b4"></div></div>')
        rows = [[f"<td>{html.escape(k)}</td>", f"<td>{html.escape(v)}</td>"] for k, v in self._facts()]
        return f'<div class="sandbox-agreement">{bar}' + _table_html(["agreement", self.id], rows) + "</div>"

    def _facts(self) -> list[tuple[str, str]]:
        return [("status", self.status), ("purpose", self.purpose), ("datasets", ", ".join(self.datasets)),
                ("valid", f"{self.valid_from} to {self.valid_to}"),
                ("ε left", f"{self.remaining_epsilon:g} of {self.budget_epsilon:g} (spent {self.spent_epsilon:g})"),
                ("δ left", f"{self.remaining_delta:g} of {self.budget_delta:g}"),
                ("ε per query", "no cap" if self.per_query_epsilon is None else f"≤ {self.per_query_epsilon:g}"),
                ("output rules", (f"counts below {self.min_count} suppressed" if self.min_count else "no minimum count")
                 + (f", rounded to {self.round_to}" if self.round_to > 1 else "") + " (plus each dataset's own rules)")]

    def __repr__(self) -> str:
        return f"Agreement {self.id}\n" + "\n".join(f"  {k}: {v}" for k, v in self._facts())


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

    def __bool__(self) -> bool:
        return self.ok

    def _repr_html_(self) -> str:
        if self.ok:
            return (f'<p class="sandbox-verify ok">✔ audit chain verified: {self.events} events, '
                    f"head <code>{html.escape(self.head_hash[:16])}…</code></p>")
        return (f'<p class="sandbox-verify broken">✘ audit chain broken at event {self.first_bad_seq}: '
                f"{html.escape(self.reason or '')}</p>")


# -- the client --------------------------------------------------------------------------------
class Sandbox:
    """A connection to the sandbox as one account (developer, operator, auditor or admin).

    `url` and `token` default to the environment variables SANDBOX_URL and SANDBOX_TOKEN;
    `agreement` (default SANDBOX_AGREEMENT, else your only active agreement) is used by
    `query`, `explain` and `budget` when they are not given one. `transport` is httpx's, for tests.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, agreement: str | None = None,
        timeout: float = 60.0, progress: bool = True, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("SANDBOX_URL") or "").rstrip("/")
        if not self.url:
            raise NotConfigured("No sandbox URL. Pass Sandbox(url, token) or set SANDBOX_URL "
                                "(the demo serves http://127.0.0.1:8000).")
        self._token_source = "the token passed to Sandbox()" if token else "SANDBOX_TOKEN"
        token = token or os.environ.get("SANDBOX_TOKEN")
        if not token:
            raise NotConfigured("No token. Pass Sandbox(url, token) or set SANDBOX_TOKEN to the token your "
                                "operator gave you (the demo's are in var/demo-tokens.json).")
        self.default_agreement = agreement or os.environ.get("SANDBOX_AGREEMENT") or None
        self.progress = progress
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}",
                                           "User-Agent": f"xm-sandbox-client/{__version__}"})
        self._policies: dict[str, dict[str, Any]] = {}

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
              headers: Mapping[str, str] | None = None, raw: bool = False) -> Any:
        try:
            response = self._http.request(method, path, json=json_body, headers=headers,
                                          params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.TimeoutException:
            raise SandboxUnreachable(
                f"The sandbox at {self.url} did not answer {method} {path} in time. Check your network and that "
                "the server is not overloaded, then try again.") from None
        except httpx.TransportError as exc:
            raise SandboxUnreachable(
                f"Cannot reach the sandbox at {self.url} ({type(exc).__name__}: {exc}). Check that it is running "
                "(`make demo` or `sandbox serve`) and that SANDBOX_URL points to it.") from None
        if response.status_code >= 400:
            raise self._error(response)
        if raw:
            return response.content
        return response.json()

    def _error(self, response: httpx.Response) -> SandboxError:
        try:
            body = response.json()["error"]
            code, message = str(body["code"]), str(body["message"])
        except (ValueError, KeyError, TypeError):
            return _remote_error("internal", f"{self.url} answered HTTP {response.status_code} without the sandbox's "
                                 "error shape. Check that SANDBOX_URL points to the sandbox's API.", {},
                                 response.status_code)
        if code == "unauthorized":
            message += f" (The client sent {self._token_source}; check it.)"
        fields = {k: v for k, v in body.items() if k not in ("code", "message")}
        return _remote_error(code, message, fields, response.status_code)

    # -- everyone -----------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """The account behind the token: id, name, role."""
        return self._call("GET", "/me")

    def datasets(self) -> pl.DataFrame:
        """The catalog: one row per dataset with its privacy unit (schemas and policies, never rows)."""
        rows = []
        for d in self._call("GET", "/datasets"):
            unit = d.get("privacy_unit") or {}
            rows.append({"name": d["name"], "title": d.get("title", ""), "public": bool(d.get("public")),
                         "privacy_unit": unit.get("column"), "max_rows": unit.get("max_rows"),
                         "columns": ", ".join(d["columns"]), "owner": d.get("owner", "")})
        return _frame(rows, ["name", "title", "public", "privacy_unit", "max_rows", "columns", "owner"])

    def describe(self, name: str) -> DatasetInfo:
        """One dataset's schema and policy: roles, types, public bounds and keys, limits."""
        data = self._call("GET", f"/datasets/{name}")
        self._policies[name] = data
        return DatasetInfo.from_json(data)

    # -- developers: mock data -----------------------------------------------------------------
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
            tables = sorted({t.name for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table)})
        except sqlglot.errors.ParseError as exc:
            if check:  # the sandbox's own message says where
                self._call("POST", "/explain", json_body={"sql": sql, "epsilon": 0.1})
            raise _remote_error("sql_rejected", f"The SQL does not parse: {exc}. Fix its syntax.", {}, 400) from None
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
                       notes=["MOCK DATA — not real: generated from the policy, not from the data."])

    # -- developers: agreements and budget -----------------------------------------------------
    def request_agreement(
        self, *, purpose: str, legal_basis: str, datasets: Mapping[str, Sequence[str] | None] | Sequence[str],
        valid_from: str, valid_to: str, epsilon: float, delta: float = 1e-6,
    ) -> Agreement:
        """Ask an operator for a data-use agreement; `datasets` maps each dataset to the columns
        in scope (None: all), or is a list of dataset names."""
        scope = dict(datasets) if isinstance(datasets, Mapping) else {name: None for name in datasets}
        body = {"purpose": purpose, "legal_basis": legal_basis, "datasets": scope, "valid_from": valid_from,
                "valid_to": valid_to, "epsilon": epsilon, "delta": delta}
        return Agreement.from_json(self._call("POST", "/agreements", json_body=body))

    def agreements(self, status: str | None = None) -> pl.DataFrame:
        """Agreements you may see (a developer's own; all for operators and auditors)."""
        rows = [a | {"datasets": ", ".join(a["datasets"])} for a in self._call("GET", "/agreements",
                                                                             params={"status": status})]
        return _frame(rows, ["id", "status", "developer_id", "purpose", "datasets", "budget_epsilon", "spent_epsilon",
                             "remaining_epsilon", "per_query_epsilon", "valid_from", "valid_to", "created_at"])

    def agreement(self, agreement_id: str | None = None) -> Agreement:
        return Agreement.from_json(self._call("GET", f"/agreements/{self._agreement(agreement_id)}"))

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
        raise NotConfigured(
            ("You have no active agreement; request one with request_agreement(...)." if not active else
             f"You have {len(active)} active agreements ({', '.join(active)}); pick one with agreement=...")
            + " Or set SANDBOX_AGREEMENT, or pass Sandbox(agreement=...).")

    # -- developers: explain and query ---------------------------------------------------------
    def explain(self, sql: str, *, epsilon: float, delta: float | None = None,
                agreement: str | None = None) -> Explanation:
        """What the query would cost and how accurate each column would be; spends nothing."""
        agreement_id = agreement or self.default_agreement
        data = self._call("POST", "/explain", json_body={"sql": sql, "epsilon": epsilon, "delta": delta,
                                                          "agreement_id": agreement_id})
        left = self.agreement(agreement_id).remaining_epsilon if agreement_id else None
        return Explanation.from_json(data, left)

    def query(
        self, sql: str, *, epsilon: float, delta: float | None = None, agreement: str | None = None,
        progress: bool | Callable[[dict[str, Any]], None] | None = None, poll: float = 2.0,
    ) -> Release:
        """Run SQL in the sandbox under an agreement, spending `epsilon`; returns the release.

        The call waits for the job. If it takes longer than `poll` seconds a progress bar is
        shown (`progress=False` hides it; a callable is called with the job instead). Ctrl-C
        cancels the job on the server and raises `JobCancelled`.
        """
        agreement_id = self._agreement(agreement)
        body = {"sql": sql, "epsilon": epsilon, "delta": delta, "agreement_id": agreement_id, "wait": poll}
        key = str(uuid.uuid4())  # a replay with this key returns the same job, charged once
        try:
            job = self._call("POST", "/jobs", json_body=body, headers={"Idempotency-Key": key})
        except KeyboardInterrupt:  # the job may exist already: find it by its key and cancel it
            job = self._call("POST", "/jobs", json_body=body | {"wait": 0}, headers={"Idempotency-Key": key})
            self._interrupted(job)
        job = self._follow(job, self.progress if progress is None else progress, poll)
        return self._release(job)

    def _follow(self, job: dict[str, Any], progress: bool | Callable[[dict[str, Any]], None],
                poll: float) -> dict[str, Any]:
        with _Progress(job, progress) as bar:
            try:
                while job["status"] not in _FINAL:
                    bar.update(job)
                    job = self._call("GET", f"/jobs/{job['id']}", params={"wait": max(poll, 0.5)})
            except KeyboardInterrupt:
                self._interrupted(job)
        return job

    def _interrupted(self, job: Mapping[str, Any]) -> None:
        final = job if job["status"] in _FINAL else self.cancel(job["id"])
        if final["status"] != "cancelled":
            raise JobCancelled(f"Interrupted, but job {job['id']} had already finished ({final['status']}); "
                               f"sb.release({job['id']!r}) returns it.", job_id=job["id"]) from None
        kept = final.get("charge_epsilon", 0) > 0
        raise JobCancelled(
            f"Job {job['id']} cancelled on the server at your request. "
            + (f"It had started, so its charge of ε {final['charge_epsilon']:g} is kept."
               if kept else "It had not started, so nothing was charged."),
            job_id=job["id"], charge_epsilon=final.get("charge_epsilon", 0)) from None

    def _release(self, job: Mapping[str, Any]) -> Release:
        status = job["status"]
        if status == "released":
            budget = self._call("GET", f"/agreements/{job['agreement_id']}")
            return Release.from_job(job, budget)
        if status == "cancelled":
            raise JobCancelled(f"Job {job['id']} was cancelled.", job_id=job["id"])
        error = dict(job.get("error") or {})
        code, message = error.pop("code", "query_failed"), error.pop("message", f"Job {job['id']} {status}.")
        raise _remote_error(code, message, error | {"job_id": job["id"]}, 500)

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
        return self._call("POST", f"/licences/{licence_id}/suspend", json_body={"reason": reason})

    def approve(
        self, agreement_id: str, *, epsilon: float | None = None, delta: float | None = None,
        per_query_epsilon: float | None = None, datasets: Mapping[str, Sequence[str] | None] | None = None,
        valid_to: str | None = None, min_count: int = 0, round_to: int = 1, reason: str = "",
    ) -> Agreement:
        """Approve a requested agreement (operators), possibly with less budget or scope."""
        body = {"epsilon": epsilon, "delta": delta, "per_query_epsilon": per_query_epsilon,
                "datasets": dict(datasets) if datasets is not None else None, "valid_to": valid_to,
                "min_count": min_count, "round_to": round_to, "reason": reason}
        return Agreement.from_json(self._call("POST", f"/agreements/{agreement_id}/approve", json_body=body))

    def reject(self, agreement_id: str, reason: str) -> Agreement:
        """Reject a requested agreement with a reason the developer and auditors will read."""
        return self._decide(agreement_id, "reject", reason)

    def revoke(self, agreement_id: str, reason: str) -> Agreement:
        """Revoke an active agreement; its jobs stop at once."""
        return self._decide(agreement_id, "revoke", reason)

    def _decide(self, agreement_id: str, action: str, reason: str) -> Agreement:
        return Agreement.from_json(self._call("POST", f"/agreements/{agreement_id}/{action}",
                                              json_body={"reason": reason}))

    def create_user(self, name: str, role: str) -> dict[str, Any]:
        """Create an operator or auditor (admins); the answer holds the token, shown once."""
        return self._call("POST", "/users", json_body={"name": name, "role": role})

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
        return Verification(**self._call("GET", "/audit/verify"))

    def export(
        self, format: str = "jsonl", *, actor: str | None = None, agreement: str | None = None,
        dataset: str | None = None, action: str | None = None, outcome: str | None = None, job: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> bytes:
        """The log (filtered like `audit`) as CSV, Parquet or JSONL bytes; the export is itself audited."""
        filters = _audit_filters(actor, agreement, dataset, action, outcome, job, since, until)
        return self._call("GET", "/audit/export", params={"format": format, **filters}, raw=True)


def _audit_filters(actor: str | None, agreement: str | None, dataset: str | None, action: str | None,
                   outcome: str | None, job: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    return {"actor": actor, "agreement_id": agreement, "dataset": dataset, "action": action, "outcome": outcome,
            "job_id": job, "since": since, "until": until}


class _Progress:
    """A tqdm bar for jobs still running after the first wait; a callable replaces it."""

    def __init__(self, job: Mapping[str, Any], progress: bool | Callable[[dict[str, Any]], None]) -> None:
        self.progress, self.bar, self.started = progress, None, time.monotonic()

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
        self.bar.set_description_str(f"job {job['id'][:8]} {job['status']} (Ctrl-C cancels)")
        self.bar.refresh()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
