"""The README documents every route and every policy key (datasette/sqlglot-style doc tests)."""

from __future__ import annotations

import re

from sandbox.api import create_app
from sandbox.policy import Column, Policy, PrivacyUnit, QueryLimits, Source
from sandbox.settings import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_route_is_documented(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    paths = set(app.openapi()["paths"])  # every API route (the console's pages are not API)
    assert len(paths) > 15
    documented = set(re.findall(r"`(?:GET|POST) (/[^`?]*)`", README))
    missing = paths - documented
    assert not missing, f"README's HTTP API table lacks {sorted(missing)}"


def test_every_policy_key_is_documented() -> None:
    keys = set()
    for model in (Policy, Source, PrivacyUnit, Column, QueryLimits):
        keys |= set(model.model_fields)
    missing = {k for k in keys if f"`{k}`" not in README and f"`{k}:" not in README}
    assert not missing, f"README's Policies section lacks {sorted(missing)}"
