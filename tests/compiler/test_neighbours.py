"""Removing one unit changes every bounded exact aggregate by at most the sensitivity the noise
plan assumes (PUMS_null: the 88 rows without a pid form one unit; the largest identified
person has 4 rows)."""

from __future__ import annotations

import duckdb
import pytest

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.policy import load_policy
from tests.conftest import POLICIES, PUMS
from tests.support.exact import exact_primitives

QUERIES = [
    "SELECT COUNT(*), COUNT(income), COUNT(DISTINCT pid) FROM pums_null",
    "SELECT SUM(income), AVG(income), VAR_SAMP(income) FROM pums_null",
    "SELECT SUM(age), STDDEV(age) FROM pums_null WHERE income > 10000",
    "SELECT sex, COUNT(*), SUM(income) FROM pums_null GROUP BY sex",
    "SELECT educ, race, COUNT(*), AVG(age) FROM pums_null GROUP BY educ, race",
    "SELECT age // 10 AS decade, COUNT(DISTINCT pid), SUM(income) FROM pums_null GROUP BY decade",
    "SELECT MEDIAN(income), QUANTILE_CONT(age, 0.9) FROM pums_null",
    "SELECT married, MEDIAN(age) FROM pums_null GROUP BY married",
    # expressions: sensitivities from their derived bounds, values clamped to them
    "SELECT SUM(CASE WHEN age >= 60 THEN 1 ELSE 0 END), AVG(CASE WHEN age >= 60 THEN 1 ELSE 0 END) FROM pums_null",
    "SELECT sex, SUM(income * 12), AVG(COALESCE(income, 0)), COUNT(*) FILTER (WHERE age > 40) FROM pums_null "
    "GROUP BY sex",
    "SELECT SUM(LEAST(GREATEST(income, 1000), 50000)), VAR(age * 2 - 1), MEDIAN(income / 1000) FROM pums_null",
    "SELECT educ, SUM(income) FILTER (WHERE married = '1'), STD(CASE WHEN sex = '1' THEN age END) FROM pums_null "
    "GROUP BY educ",
    "SELECT COUNT(DISTINCT educ), COUNT(DISTINCT age), COUNT(DISTINCT income) FROM pums_null",
    "SELECT sex, COUNT(DISTINCT educ), COUNT(DISTINCT income) FROM pums_null GROUP BY sex",
    "SELECT MIN(income), MAX(age) FROM pums_null",
    "SELECT race, MIN(age), MAX(income) FROM pums_null GROUP BY race",
    "SELECT CORR(income, age), COVAR_SAMP(age, income), REGR_INTERCEPT(income, age) FROM pums_null",
    "SELECT sex, REGR_SLOPE(income, age), COVAR_POP(income, age) FROM pums_null GROUP BY sex",
]


def _catalog(tmp, secret: bytes, csv_filter: str) -> Catalog:
    """PUMS_null registered from a filtered copy of the CSV, with the same server secret (so the
    keyed row choice of every other unit is identical)."""
    tmp.mkdir()
    (tmp / "secret.key").write_bytes(secret)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{PUMS / 'PUMS_null.csv'}', all_varchar = true) WHERE {csv_filter}) "
        f"TO '{tmp / 'pums.csv'}' (HEADER)"
    )
    policy = load_policy(POLICIES / "pums_null.yaml")
    policy = policy.model_copy(update={"source": policy.source.model_copy(update={"location": str(tmp / "pums.csv")})})
    catalog = Catalog(tmp)
    catalog.register(policy)
    return catalog


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("neighbours")
    secret = bytes(range(32))
    full = _catalog(root / "full", secret, "true")
    heaviest = duckdb.sql(
        f"SELECT pid FROM read_csv('{PUMS / 'PUMS_null.csv'}') WHERE pid IS NOT NULL GROUP BY pid "
        "ORDER BY count(*) DESC, pid LIMIT 1"
    ).fetchall()[0][0]
    return {
        "without the 88-row unit": (full, _catalog(root / "no_null", secret, "pid IS NOT NULL")),
        f"without person {heaviest}": (
            full,
            _catalog(root / "no_heavy", secret, f"pid IS NULL OR pid <> '{heaviest}'"),
        ),
    }


def test_the_removed_unit_is_heavy(pairs) -> None:
    full = next(iter(pairs.values()))[0].get("pums_null")
    assert full.max_rows_per_unit == 88 and full.manifest["null_unit_rows"] == 88


@pytest.mark.parametrize("sql", QUERIES)
@pytest.mark.parametrize("pair", ["without the 88-row unit", "without person"])
def test_change_within_sensitivity(pairs, pair, sql) -> None:
    full, neighbour = next(v for k, v in pairs.items() if k.startswith(pair))
    plan = compile_query(sql, full, epsilon=1.0)
    plan_n = compile_query(sql, neighbour, epsilon=1.0)
    assert [p.sensitivity for p in plan.primitives] == [p.sensitivity for p in plan_n.primitives]
    a, b = exact_primitives(plan), exact_primitives(plan_n)
    groups = set(a) | set(b)
    for p in plan.primitives:
        if p.kind == "quantile":  # rows added or removed across all groups' histograms
            change = sum(
                abs(a.get(g, {}).get(p.id, {}).get(i, 0) - b.get(g, {}).get(p.id, {}).get(i, 0))
                for g in groups
                for i in set(a.get(g, {}).get(p.id, {})) | set(b.get(g, {}).get(p.id, {}))
            )
        else:  # L1 distance of the primitive's vector over all groups, in grid units
            change = sum(abs((a.get(g, {}).get(p.id) or 0) - (b.get(g, {}).get(p.id) or 0)) for g in groups)
        assert change <= p.sensitivity, f"{p.id} ({p.kind} {p.column}) moved by {change} > {p.sensitivity}"
        if p.kind == "count" and "88-row" in pair and "WHERE" not in sql:
            assert change > 0, "the removed unit must be visible in the exact counts"
