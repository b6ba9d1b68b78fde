"""The plan cache (sandbox/compiler/cache.py): a query asked again is not compiled again, and a
kept plan is never used once what it was compiled from may have changed."""

from __future__ import annotations

import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import Contribution, OutputRules, compile_query
from sandbox.compiler.cache import PLANS, PlanCache
from sandbox.errors import SQLRejected
from sandbox.policy import load_policy
from tests.conftest import POLICIES

SQL = "SELECT COUNT(*) AS n, SUM(income) AS s FROM pums_null WHERE age > 30"
POLICY = POLICIES / "pums_null.yaml"


@pytest.fixture()
def catalog(tmp_path) -> Catalog:
    catalog = Catalog(tmp_path)
    catalog.register(load_policy(POLICY), POLICY)
    return catalog


def test_a_query_asked_again_is_not_compiled_again(catalog, monkeypatch) -> None:
    first = compile_query(SQL, catalog, epsilon=1.0)
    monkeypatch.setattr("sandbox.compiler._compile", _no_compile)
    assert compile_query(SQL, catalog, epsilon=1.0) is first
    assert compile_query(SQL, catalog, epsilon=1) is first  # the same parameters, spelled otherwise


@pytest.mark.parametrize(
    "change",
    [
        {"sql": SQL + " "},
        {"epsilon": 0.5},
        {"delta": 1e-9},
        {"rules": OutputRules(min_count=10)},
        {"memory_mb": 512},
        {"contribution": {"max_rows": {"pums_null": 2}}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_other_input_compiles_afresh(catalog, change) -> None:
    asked = {"sql": SQL, "epsilon": 1.0, "delta": None, "rules": None, "memory_mb": 1024, "contribution": None}
    first = compile_query(asked.pop("sql"), catalog, **asked)
    asked = {"sql": SQL, "epsilon": 1.0, "delta": None, "rules": None, "memory_mb": 1024, "contribution": None}
    asked.update(change)
    other = compile_query(asked.pop("sql"), catalog, **asked)
    assert other is not first
    assert compile_query(SQL, catalog, epsilon=1.0, memory_mb=1024) is first  # both kept


def test_a_dataset_registered_again_is_compiled_against_afresh(catalog) -> None:
    """The policy changed (a unit contributes at most 2 rows, not 4): the kept plan's
    sensitivities are the old policy's and must not be used."""
    before = compile_query(SQL, catalog, epsilon=1.0)
    policy = load_policy(POLICY)
    stricter = policy.model_copy(update={"privacy_unit": policy.privacy_unit.model_copy(update={"max_rows": 2})})
    catalog.register(stricter, POLICY)
    after = compile_query(SQL, catalog, epsilon=1.0)
    assert after is not before
    sensitivity = {p.id: p.sensitivity for p in after.primitives}
    assert sensitivity != {p.id: p.sensitivity for p in before.primitives}
    assert max(sensitivity.values()) < max(p.sensitivity for p in before.primitives)


def test_another_catalog_over_the_same_files_compiles_afresh(catalog) -> None:
    first = compile_query(SQL, catalog, epsilon=1.0)
    assert compile_query(SQL, Catalog(catalog.data_dir), epsilon=1.0) is not first


def test_refusals_are_not_kept(catalog) -> None:
    for _ in range(2):
        with pytest.raises(SQLRejected):
            compile_query("SELECT age FROM pums_null", catalog, epsilon=1.0)
    assert len(PLANS) == 0


def test_disabled_compiles_every_time(catalog) -> None:
    first = compile_query(SQL, catalog, epsilon=1.0)
    with PLANS.disabled():
        assert compile_query(SQL, catalog, epsilon=1.0) is not first
    assert compile_query(SQL, catalog, epsilon=1.0) is first


def test_least_recently_used_goes_first(catalog) -> None:
    cache = PlanCache(size=2)
    plans = [compile_query(f"SELECT COUNT(*) FROM pums_null WHERE age > {a}", catalog, epsilon=1.0) for a in (1, 2, 3)]
    for key, plan in zip("abc", plans, strict=True):
        cache.put(key, catalog, catalog.generation, plan)
        cache.get("a", catalog)  # a is used after each put: b is the oldest when c comes
    assert cache.get("a", catalog) is plans[0]
    assert cache.get("b", catalog) is None
    assert cache.get("c", catalog) is plans[2]


def test_contribution_objects_and_dicts_share_a_plan(catalog) -> None:
    asked = {"max_rows": {"pums_null": 2}}
    first = compile_query(SQL, catalog, epsilon=1.0, contribution=asked)
    assert compile_query(SQL, catalog, epsilon=1.0, contribution=Contribution.parse(asked)) is first


def _no_compile(*args, **kwargs):
    raise AssertionError("compiled again")
