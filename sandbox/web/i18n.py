"""The console's language: chosen per request, never per process.

    1. the reader's own choice (the English · 中文 switch in the header: a cookie, one year)
    2. the browser's Accept-Language
    3. SANDBOX_LANG (the server's default), else English

Templates get newstyle gettext callables (`_()`, `{% trans %}`) bound to that language, a
`numbers` formatter (`sandbox.i18n.Numbers`) and the `word` filter for statuses and roles.
`install(env)` adds the i18n extension; `context(request)` is what `render.page` passes in; the
switch itself is a route of `web.common`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Request
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from sandbox import i18n

__all__ = ["COOKIE", "context", "install", "locale_of"]

COOKIE = "sandbox_lang"  # set by the language switch (web/common.py)


def locale_of(request: Request) -> str:
    default = getattr(request.app.state.settings, "lang", None)
    return i18n.choose(request.cookies.get(COOKIE), i18n.accepted(request.headers.get("accept-language")), default)


def _newstyle(function: Callable[..., str], plural: bool = False) -> Callable[..., str]:
    """Jinja's newstyle gettext: the catalog's text, marked safe, then %-formatted with escaped values."""

    if plural:
        @pass_context
        def ngettext(__context: Context, __singular: str, __plural: str, __num: int, **variables: Any) -> str:
            # Dunder names: a template's own variables (n, count, ...) arrive as keywords.
            variables.setdefault("num", __num)
            text = __context.call(function, __singular, __plural, __num)
            return (Markup(text) if __context.eval_ctx.autoescape else text) % variables

        return ngettext

    @pass_context
    def gettext(__context: Context, __message: str, **variables: Any) -> str:
        text = __context.call(function, __message)
        return (Markup(text) if __context.eval_ctx.autoescape else text) % variables

    return gettext


def context(request: Request) -> dict[str, Any]:
    """Per request: the language, its catalog and numbers, and the language switch's links."""
    locale = locale_of(request)
    catalog = i18n.translations(locale)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {
        "lang": locale,
        "html_lang": i18n.TAGS[locale],
        "gettext": _newstyle(catalog.gettext),
        "ngettext": _newstyle(catalog.ngettext, plural=True),
        "numbers": i18n.Numbers(locale),
        "languages": [(code, i18n.NAMES[code], i18n.TAGS[code],
                       f"/console/language?to={i18n.TAGS[code]}&next={quote(here, safe='')}")
                      for code in i18n.LOCALES],
    }


@pass_context
def _word(ctx: Context, value: Any) -> str:
    return i18n.word(value, ctx.get("lang", i18n.DEFAULT))


@pass_context
def _localized(ctx: Context, record: Any, name: str) -> str:
    """A policy text (title, description) in the reader's language when the policy has one."""
    if ctx.get("lang") == "zh_CN" and record.get(f"{name}_zh"):
        return str(record[f"{name}_zh"])
    return str(record.get(name) or "")


def install(env: Environment) -> None:
    env.add_extension("jinja2.ext.i18n")
    env.install_null_translations(newstyle=True)  # replaced per render by `context`
    env.policies["ext.i18n.trimmed"] = True
    env.filters.update(word=_word, localized=_localized)
