"""Epsilon and delta anywhere in their accepted ranges never cause an internal error: a plan, or
a refusal that says what to ask for instead, before anything is charged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.compiler import compile_query
from sandbox.engine.execute import run_plan
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from sandbox.errors import BudgetExceeded, InvalidParameter

QUERIES = [
    "SELECT month, COUNT(*), SUM(contribution) FROM social_insurance GROUP BY month",  # private keys
    "SELECT district, AVG(monthly_income), STDDEV(age) FROM residents GROUP BY district",  # public keys
    "SELECT hospital, MEDIAN(cost) FROM medical_visits GROUP BY hospital",
    "SELECT COUNT(DISTINCT person_id) FROM social_insurance",
]

epsilons = st.one_of(st.floats(1e-9, 1.0), st.sampled_from([1e-9, 1.0000000001e-9, 0.999999999, 1.0]))
deltas = st.one_of(
    st.none(),
    st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    st.sampled_from([5e-324, 1e-300, 1e-17, 1e-16, 1e-15, 1e-9, 0.5, 0.9999999999999999]),
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(sql=st.sampled_from(QUERIES), epsilon=epsilons, delta=deltas)
def test_any_accepted_parameter_plans_or_refuses_clearly(demo_catalog, sql, epsilon, delta) -> None:
    try:
        plan = compile_query(sql, demo_catalog, epsilon=epsilon, delta=delta)
    except (InvalidParameter, BudgetExceeded) as err:
        assert err.message.rstrip().endswith("."), err.message
        return
    assert sum(p.epsilon for p in plan.primitives) == pytest.approx(epsilon)


@pytest.mark.parametrize(("epsilon", "delta"), [(1e-9, 1e-6), (1e-9, 0.999), (1.0, 1e-14), (1.0, 0.999)])
@pytest.mark.parametrize("sql", QUERIES)
def test_extreme_parameters_run(demo_catalog, sql, epsilon, delta) -> None:
    """The noise at the ends of the ranges (scales of 1e16 and more saturate at 64 bits in
    OpenDP) never fails in the worker either."""
    plan = compile_query(sql, demo_catalog, epsilon=epsilon, delta=delta)
    con = open_locked_connection(plan.attach, Limits(threads=1))
    try:
        run_plan(con, plan)
    finally:
        con.close()
