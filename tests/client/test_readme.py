"""README's "For licensed developers" section runs as written, against a live sandbox.

Its ```python blocks are executed in one namespace and its ```ipython blocks in an IPython
shell, with the connection in the environment variables the section tells readers to set.
"""

from __future__ import annotations

import re

from tests.support.live import REPO

SECTION = "## For licensed developers"


def _section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(SECTION)}\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"README.md has no {SECTION!r} section (its text is in docs/for-developers.md)"
    return match.group(1)


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def test_the_developer_section_runs(live, monkeypatch, capsys) -> None:
    for name, value in live.client_env().items():
        monkeypatch.setenv(name, value)
    section = _section()
    python, ipython = _blocks(section, "python"), _blocks(section, "ipython")
    assert python and ipython

    namespace: dict = {}
    for code in python:
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - documentation under test
    release, mock = namespace["release"], namespace["mock"]
    assert len(release) == 6 and not release.mock and mock.mock
    assert "charged ε" in capsys.readouterr().out

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        for code in ipython:
            result = shell.run_cell(code)
            assert result.success, result.error_in_exec or result.error_before_exec
        assert result.result is not None and len(result.result) == 2  # the last cell's release: F and M
    finally:
        InteractiveShell.clear_instance()

