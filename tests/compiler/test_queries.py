"""Every accepted query compiles to a plan; every rejected one fails with its stated reason."""

from __future__ import annotations

import pytest

from sandbox.compiler import compile_query
from sandbox.errors import SQLRejected
from tests.compiler.cases import load_cases

ACCEPTED = load_cases("accepted.sql") + load_cases("joins_accepted.sql") + load_cases("typed_accepted.sql")
REJECTED = load_cases("rejected.sql") + load_cases("joins_rejected.sql") + load_cases("typed_rejected.sql")


def test_fixture_sizes() -> None:
    assert len(load_cases("accepted.sql")) >= 40 and len(load_cases("rejected.sql")) >= 40
    assert len(load_cases("joins_accepted.sql")) >= 30 and len(load_cases("joins_rejected.sql")) >= 30


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.title for c in ACCEPTED])
def test_accepted(case, demo_catalog) -> None:
    plan = compile_query(case.sql, demo_catalog, epsilon=1.0)
    if not plan.primitives:  # only keys of a public key set: the policy's own list, free
        assert plan.public_keys and plan.epsilon == 0 and plan.delta == 0
        assert all(c.kind == "key" for c in plan.outputs) and not plan.needs_aggregate
        return
    assert abs(sum(p.epsilon for p in plan.primitives) - 1.0) < 1e-9, "the epsilon split adds up"
    assert "__rank" not in plan.output_sql and case.sql not in plan.aggregate_sql


@pytest.mark.parametrize("case", REJECTED, ids=[c.title for c in REJECTED])
def test_rejected(case, demo_catalog) -> None:
    with pytest.raises(SQLRejected) as info:
        compile_query(case.sql, demo_catalog, epsilon=1.0)
    err = info.value
    assert err.fields["rule"] == case.rule, err.message
    assert case.expect.lower() in err.message.lower(), err.message
    assert err.message.rstrip().endswith("."), "every message ends with the fix"
