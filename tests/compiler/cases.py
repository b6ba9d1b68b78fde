"""Reads the table-driven query fixtures: blocks of `-- key: value` headers followed by SQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Case:
    title: str
    sql: str
    rule: str | None = None
    expect: str | None = None


def load_cases(name: str) -> list[Case]:
    cases: list[Case] = []
    headers: dict[str, str] = {}
    body: list[str] = []

    def flush() -> None:
        if headers:
            cases.append(Case(headers["title"], "\n".join(body).strip(), headers.get("rule"), headers.get("expect")))

    for line in (HERE / name).read_text().splitlines():
        if line.startswith("-- ") and ":" in line and not body:
            key, _, value = line[3:].partition(":")
            headers[key.strip()] = value.strip()
        elif line.startswith("-- title:"):
            flush()
            headers, body = {"title": line.partition(":")[2].strip()}, []
        else:
            body.append(line)
    flush()
    return cases
