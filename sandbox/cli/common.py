"""What every command shares: the language, the output, the connection options and one-line errors.

Staff and developer commands talk to a running sandbox over HTTP through the notebook client
(`sandbox.client.Sandbox`), so the roles are checked by the server exactly as for the API. A
refused request, a server that does not answer or a wrong token is one line on stderr that says
what to check, and exit code 1; never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from sandbox import i18n
from sandbox.errors import SandboxError

__all__ = ["DEFAULT_URL", "DataDir", "DatabaseUrl", "Json", "Token", "Url", "console", "fail", "ident", "numbers",
           "one_line", "remote", "show_json", "state", "table", "warn", "word", "_"]

DEFAULT_URL = "http://127.0.0.1:8000"


class _State:
    """The language of this run: SANDBOX_LANG or the system's locale, or `sandbox --lang`."""

    lang: str = i18n.from_environment()


state = _State()
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _(message: str) -> str:
    return i18n.translations(state.lang).gettext(message)


def numbers() -> i18n.Numbers:
    return i18n.Numbers(state.lang)


# -- options shared by the commands ---------------------------------------------------------------
Url = Annotated[str, typer.Option("--url", envvar="SANDBOX_URL", help=_("the sandbox's address"))]
Token = Annotated[str | None, typer.Option("--token", envvar="SANDBOX_TOKEN", show_default=False,
                                           help=_("your access token"))]
Json = Annotated[bool, typer.Option("--json", help=_("print the server's JSON instead of a table"))]
DataDir = Annotated[Path, typer.Option("--data-dir", envvar="SANDBOX_DATA_DIR",
                                       help=_("the server's data directory (catalog, database, keys)"))]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL", show_default=False,
                                                 help=_("PostgreSQL URL (default: SQLite in the data directory)"))]


# -- output ---------------------------------------------------------------------------------------
def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 1."""
    label = _("error")
    errors.print(f"[red]{escape(label)}[/red]: {escape(' '.join(message.split()))}")
    raise typer.Exit(1)


def one_line(exc: SandboxError, url: str | None = None) -> str:
    """A refusal as one line that ends with what to check."""
    from sandbox.client import error_title

    code = getattr(exc, "code", "internal")
    if code == "unreachable":
        return _("Cannot reach the sandbox at {url} ({reason}). Check --url (or SANDBOX_URL) and that the sandbox is "
                 "running there.").format(url=exc.fields.get("url") or url, reason=exc.fields.get("reason", ""))
    if code == "unauthorized":
        return _("The sandbox at {url} refused the token: {message} Check --token (or SANDBOX_TOKEN).").format(
            url=url, message=exc.message.split(" (The client sent")[0])
    if code == "internal" and exc.fields.get("http_status"):
        return _("{url} answered HTTP {status}, not as the sandbox would. Check --url (or SANDBOX_URL).").format(
            url=url, status=exc.fields["http_status"])
    title = error_title(code, state.lang)
    text = f"{code}{f' ({title})' if title else ''}: {exc.message}"
    if code in ("not_found", "method_not_allowed") and " /" in exc.message and "See /docs" in exc.message:
        text += " " + _("Check --url (or SANDBOX_URL): the sandbox's address, e.g. {url}.").format(url=DEFAULT_URL)
    return text


def warn(message: str) -> None:
    """What to read before something happens (a query whose small groups will not appear): one
    line on stderr, and the command goes on."""
    label = _("warning")
    errors.print(f"[yellow]{escape(label)}[/yellow]: {escape(' '.join(message.split()))}")


def show_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def write_checkpoints(document: dict[str, Any], out: Path | None) -> None:
    """The signed checkpoints (from the server or the local database) as JSON: printed, or written
    to `out` with a one-line summary."""
    text = json.dumps(document, indent=2)
    if out is None:
        print(text)
        return
    out.write_text(text + "\n")
    console.print(_("wrote {path}: {n} checkpoints, key {key}…").format(
        path=out, n=len(document["checkpoints"]), key=(document["key_id"] or "?")[:16]), soft_wrap=True)


def ident(header: str) -> Column:
    """A column of ids: never wrapped or cut, so that an id can be copied into the next command."""
    return Column(header, no_wrap=True, min_width=36)


def table(columns: Sequence[str | Column], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A rich table; empty tables say so."""
    if not rows:
        none = _("(none)")
        console.print(none if title is None else f"{title}: {none}")
        return
    out = Table(*columns, title=title, title_justify="left")
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row])
    console.print(out)


def word(value: Any) -> str:
    return i18n.word(value, state.lang)


# -- the connection -------------------------------------------------------------------------------
@contextmanager
def remote(url: str, token: str | None) -> Iterator[Any]:
    """A `Sandbox` for `url` as the account of `token`; every error becomes one line."""
    from sandbox.client import Sandbox

    if not token:
        fail(_("No token: pass --token or set SANDBOX_TOKEN (the demo's tokens are in var/demo-tokens.json)."))
    try:
        with Sandbox(url, token, progress=sys.stderr.isatty(), lang=state.lang, on_warning=warn) as sandbox:
            yield sandbox
    except SandboxError as exc:
        fail(one_line(exc, url))
