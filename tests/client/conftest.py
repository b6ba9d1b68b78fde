"""Client tests run against a real sandbox server (tests/support/live.py) on loopback."""

from __future__ import annotations

import pytest

from sandbox.client import Sandbox
from tests.support.live import LiveSandbox, live  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def operator(live: LiveSandbox) -> Sandbox:  # noqa: F811
    return Sandbox(live.url, live.tokens["operator"])


@pytest.fixture(scope="session")
def auditor(live: LiveSandbox) -> Sandbox:  # noqa: F811
    return Sandbox(live.url, live.tokens["auditor"])


@pytest.fixture(scope="session")
def agreement_id(live: LiveSandbox, operator: Sandbox) -> str:  # noqa: F811
    """A generous agreement of the demo developer's, so client tests never run out of budget."""
    request = Sandbox(live.url, live.tokens["developer"]).request_agreement(
        purpose="client tests", legal_basis="tests", datasets=["residents", "medical_visits", "social_insurance"],
        valid_from="2020-01-01", valid_to="2099-01-01", epsilon=90.0)
    live.approve_parts(request.id)  # the demo's data stewards, then the operator
    return operator.approve(request.id, epsilon=90.0, per_query_epsilon=1.0).id


@pytest.fixture()
def developer(live: LiveSandbox, agreement_id: str) -> Sandbox:  # noqa: F811
    return Sandbox(live.url, live.tokens["developer"], agreement=agreement_id, progress=False)
