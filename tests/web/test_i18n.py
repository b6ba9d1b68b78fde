"""The console in Chinese and English.

Statically: no visible text in a template escapes translation (text between tags, visible
attributes, string constants an expression displays). Rendered: every page in zh-CN carries none
of the English messages, and the language follows the reader's choice, then the browser's
Accept-Language, then SANDBOX_LANG.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po
from jinja2 import nodes

from sandbox import i18n
from sandbox.settings import Settings
from sandbox.web.render import NAV, env
from tests.conftest import REPO
from tests.web.conftest import csrf_of

TEMPLATES = sorted(p.name for p in (REPO / "sandbox" / "web" / "templates").glob("*.html"))
GETTEXT = {"_", "gettext", "ngettext", "pgettext"}
TRANSLATING_FILTERS = {"word", "localized"}  # they translate what they are given
VISIBLE_ATTRIBUTES = {"aria-label", "title", "placeholder", "alt", "label"}
# Text that is the same in every language: units, formats, symbols, numbers and ISO times.
NOT_WORDS = re.compile(r"UTC|YYYY-MM-DD|\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?|[^A-Za-z]")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in VISIBLE_ATTRIBUTES and value]

    def handle_data(self, data: str) -> None:
        self.found.append(data)


def _words(text: str) -> str:
    return NOT_WORDS.sub("", text).strip()


def _displayed_constants(node: nodes.Node, displayed: bool) -> list[str]:
    """String constants with letters that an expression shows: directly, through a condition or
    `or`, or anywhere if they contain a space (a phrase, not a key); not inside gettext."""
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name in GETTEXT:
        return []
    if isinstance(node, nodes.Filter) and node.name in TRANSLATING_FILTERS:
        return []
    if isinstance(node, nodes.Const):
        text = node.value if isinstance(node.value, str) else ""
        return [text] if re.search("[A-Za-z]{2}", text) and (displayed or " " in text.strip()) else []
    found: list[str] = []
    for child in node.iter_child_nodes():
        shows = displayed and (
            isinstance(node, nodes.CondExpr) and child is not node.test
            or isinstance(node, nodes.Or | nodes.And | nodes.Concat)
            or isinstance(node, nodes.Filter) and child is node.node
            or isinstance(node, nodes.Pair) and child is node.value)
        found += _displayed_constants(child, bool(shows))
    return found


def untranslated(source: str) -> list[str]:
    # The HTML around the template code: trans blocks and every tag, expression and comment of
    # Jinja replaced by a space, then read as HTML (text and visible attributes).
    html = re.sub(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", " ", source, flags=re.S)
    html = re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", " ", html, flags=re.S)
    parser = _Text()
    parser.feed(html)
    problems = [text.strip() for text in parser.found if _words(text)]
    tree = env.parse(source)
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            if not isinstance(child, nodes.TemplateData):
                problems += _displayed_constants(child, displayed=True)
    for node in tree.find_all((nodes.Assign, nodes.If, nodes.For, nodes.Macro)):
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Expr):
                problems += [text for text in _displayed_constants(child, displayed=False)]
    return problems


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_visible_string_in_the_templates_is_translated(name: str) -> None:
    assert untranslated(env.loader.get_source(env, name)[0]) == [], f"{name}: wrap these in _() or {{% trans %}}"


def test_the_check_catches_what_it_should() -> None:
    for source, caught in (
        ("<p>Hello</p>", ["Hello"]),
        ('<a title="Open it">x</a>', ["Open it", "x"]),
        ("{{ _('Hello') }} <b>{{ n }}</b> UTC 2026-11-22", []),
        ("{{ x or 'none given' }}", ["none given"]),
        ("{{ 'yes' if a else 'no' }}", ["yes", "no"]),
        ("{% if a == 'requested' %}{{ a|word }}{% endif %}", []),
        ("{{ {'a': 'Please sign in'}.get(x) }}", ["Please sign in"]),
        ("{% trans n=3 %}{{ n }} rows{% endtrans %}", []),
        ("{% set label = 'no reason given' %}", ["no reason given"]),
    ):
        assert untranslated(source) == caught, source


def test_the_menu_and_the_words_from_data_are_in_the_catalog() -> None:
    labels = {label for entries in NAV.values() for label, _ in entries}
    assert labels <= i18n.WORDS, "a console menu label is missing from sandbox.i18n.WORDS"
    for word in i18n.WORDS:
        assert i18n.word(word, "zh_CN") != word, word


# -- rendered pages -------------------------------------------------------------------------------
ENGLISH = [m.id for m in read_po((REPO / "sandbox" / "locale" / "zh_CN" / "LC_MESSAGES" / "sandbox.po").open("rb"))
           if isinstance(m.id, str) and " " in m.id and "%" not in m.id and "{" not in m.id and len(m.id) > 12]
PAGES = {"operator": ["/console/queue", "/console/licences", "/console/catalog", "/console/agreements/{pending}",
                      "/console/agreements/{active}", "/console/agreements", "/console/agreements?q=nothing"],
         "auditor": ["/console/audit", "/console/audit?verify=1", "/console/audit/events/1", "/console/audit/charts",
                     "/console/agreements", "/console/agreements/{active}"],
         "developer": ["/console/me"]}


@pytest.mark.parametrize("role", sorted(PAGES))
def test_every_page_in_chinese_has_no_english_message_left(console, role: str) -> None:
    client = console.client(role)
    for path in PAGES[role]:
        path = path.format(pending=console.people.pending_id, active=console.people.active_id)
        response = client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
        assert response.status_code == 200, path
        assert '<html lang="zh-CN">' in response.text
        leftovers = [text for text in ENGLISH if text in response.text]
        assert not leftovers, f"{path}: {leftovers}"
        assert "厦门数据沙箱" in response.text


def test_chinese_pages_show_the_policies_chinese_titles(console) -> None:
    page = console.client("operator").get("/console/catalog", headers={"Accept-Language": "zh-CN"}).text
    assert "居民户籍登记（演示）" in page and "Resident registry (demo)" not in page
    english = console.client("operator").get("/console/catalog", headers={"Accept-Language": "en"}).text
    assert "Resident registry (demo)" in english


def test_the_language_follows_the_reader_then_the_browser_then_the_server(console_factory, demo_catalog) -> None:
    console = console_factory()
    client = console.client("operator")
    assert '<html lang="en">' in client.get("/console/queue").text  # nothing asked: the server's default, English
    assert '<html lang="zh-CN">' in client.get("/console/queue", headers={"Accept-Language": "zh-CN"}).text
    # The switch in the header remembers the reader's choice, over the browser's.
    switched = client.get("/console/language?to=en&next=/console/queue")
    assert switched.status_code == 303 and switched.headers["location"] == "/console/queue"
    assert '<html lang="en">' in client.get("/console/queue", headers={"Accept-Language": "zh-CN"}).text
    client.get("/console/language?to=zh-CN&next=//evil.example")  # never another site
    assert client.get("/console/language?to=zh-CN&next=//evil.example").headers["location"] == "/console"
    assert '<html lang="zh-CN">' in client.get("/console/queue", headers={"Accept-Language": "en"}).text
    # SANDBOX_LANG when the browser asks for nothing we have.
    console.app.state.settings = Settings(data_dir=demo_catalog.data_dir, lang="zh-CN")
    fresh = console.client("auditor")
    assert '<html lang="zh-CN">' in fresh.get("/console/audit", headers={"Accept-Language": "fr"}).text
    assert '<html lang="en">' in fresh.get("/console/audit", headers={"Accept-Language": "en-GB"}).text


def test_the_sign_in_page_and_errors_are_translated(console) -> None:
    client = console.client()
    page = client.get("/console/signin", headers={"Accept-Language": "zh-CN"})
    assert "登录控制台" in page.text and 'lang="zh-CN"' in page.text
    refused = client.post("/console/signin", data={"csrf": csrf_of(page.text), "token": "sbx_wrong"},
                          headers={"Accept-Language": "zh-CN"})
    assert refused.status_code == 401 and "登录控制台" in refused.text
    developer = console.client("developer")
    forbidden = developer.get("/console/queue", headers={"Accept-Language": "zh-CN"})
    assert forbidden.status_code == 403 and "<h1>不允许</h1>" in forbidden.text


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_verify_badge_with_signed_checkpoints_in_both_languages(fresh_console, language: str) -> None:
    from sandbox.audit import checkpoints

    settings = fresh_console.app.state.settings
    checkpoints.create(fresh_console.store, checkpoints.Signer.load_or_create(settings.data_dir),
                       witness=checkpoints.witness_path(settings.data_dir, settings.database))
    page = fresh_console.client("auditor").get("/console/audit?verify=1", headers={"Accept-Language": language})
    assert page.status_code == 200
    badge = re.search(r'id="verify-badge">(.*?)</p>', page.text, re.S).group(1)
    expected = "1 个签名检查点，最后一个在事件" if language == "zh-CN" else "1 signed checkpoint, the last at event"
    assert expected in " ".join(badge.split())
