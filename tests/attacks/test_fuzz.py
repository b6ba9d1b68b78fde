"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis), with a valid token of each
role, against a real server: no request may cause a 5xx, and every response must match what the
document says about it (a documented status code, its content type and its schema).

Bounded and deterministic: a few examples per operation, role and generation mode (valid
inputs, and inputs that break the document's constraints), with Hypothesis derandomized and no
example database, so a run takes seconds and fails the same way twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.attacks.conftest import AttackData, World, started_world

ROLES = ("developer", "operator", "auditor", "admin")
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 8, schemathesis.GenerationMode.NEGATIVE: 4}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Requests whose bodies name an agreement get a real one half the time, so that the fuzzer's SQL
# reaches the compiler instead of stopping at "no such agreement".
WITH_AGREEMENT = {("POST", "/jobs"), ("POST", "/explain")}


@pytest.fixture(scope="module")
def fuzzed(attack_data: AttackData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database = tmp_path_factory.mktemp("fuzz-store") / "sandbox.db"
    with started_world(attack_data, database, SANDBOX_MAX_WAIT_SECONDS="1") as world:
        yield world


@pytest.mark.parametrize("role", ROLES)
def test_fuzz_api(fuzzed: World, role: str) -> None:
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    token = fuzzed.tokens["mallory" if role == "developer" else role]
    session = requests.Session()  # one connection pool for all of the role's requests
    session.headers["Authorization"] = f"Bearer {token}"
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        for mode, examples in EXAMPLES.items():
            made, failed = fuzz(result.ok(), mode, examples, session, fuzzed.ids["agreement"])
            calls += made
            failures += failed
    assert calls >= 100, f"the fuzzer made only {calls} requests"
    assert not failures, f"{len(failures)} of {calls} requests failed:\n" + "\n".join(failures[:20])
    assert fuzzed.data.current_hashes() == fuzzed.data.hashes


def fuzz(operation: Any, mode: schemathesis.GenerationMode, examples: int, session: requests.Session,
         agreement: str) -> tuple[int, list[str]]:
    """Up to `examples` generated requests to one operation; returns how many were made and what
    failed (a 5xx, an undocumented status, a wrong content type or schema)."""
    failures: list[str] = []
    calls = 0
    key = (operation.method.upper(), operation.path)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        nonlocal calls
        calls += 1
        if key in WITH_AGREEMENT and isinstance(case.body, dict) and calls % 2:
            case.body["agreement_id"] = agreement
        response = case.call(session=session, headers={"Authorization": session.headers["Authorization"]},
                             timeout=60)
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # schemathesis raises a group of failures
            lines = str(exc).strip().splitlines()
            failures.append(f"{operation.label} [{mode.value}] -> {response.status_code}: {' '.join(lines[:12])[:600]}")

    try:
        call()
    except Unsatisfiable:  # nothing can be invalid about an operation without inputs
        pass
    return calls, failures
