"""The demo city: matches its policies, is deterministic, and looks like what the sandbox must
handle (skewed incomes with outliers, many rows per person, a long tail of visits)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from connectors.base import check_schema
from sandbox.demo import DATASETS, DISTRICTS, build_demo
from sandbox.policy import Policy, load_policies, load_policy

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
POLICY_FILES = sorted(POLICY_DIR.glob("*.yaml"))
SCALE = 20_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_demo(tmp_path_factory.mktemp("data") / "demo", scale=SCALE)


@pytest.fixture(scope="module")
def policies() -> dict[str, Policy]:
    return {name: policy for name, (policy, _) in load_policies(POLICY_DIR).items()}


@pytest.fixture(scope="module")
def con(demo: dict[str, Path]):
    con = duckdb.connect()
    for name, path in demo.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    yield con
    con.close()


def one(con: duckdb.DuckDBPyConnection, sql: str):
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- policies ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", POLICY_FILES, ids=[p.stem for p in POLICY_FILES])
def test_policy_loads(path: Path) -> None:
    policy = load_policy(path)
    assert policy.name == path.stem
    assert policy.description and policy.owner and policy.title
    for column in policy.columns.values():
        assert column.description, f"{policy.name}: every column is described"


def test_every_demo_dataset_has_a_policy(policies: dict[str, Policy]) -> None:
    assert set(DATASETS) <= set(policies)
    for name in DATASETS:
        source = policies[name].source
        assert (source.kind, source.location) == ("parquet", f"{{data_dir}}/demo/{name}.parquet")


# -- the generated data matches its policy -------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
def test_schema_matches_policy(name: str, demo, policies, con) -> None:
    policy = policies[name]
    described = con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
    schema = {row[0]: row[1] for row in described}
    check_schema(policy, schema, str(demo[name]))
    assert list(schema) == list(policy.columns), "no undeclared columns, same order"
    for column, spec in policy.columns.items():
        assert schema[column] == spec.type, f"{name}.{column}: exact type, not just compatible"
        if not spec.nullable:
            assert one(con, f"SELECT count(*) FROM {name} WHERE {column} IS NULL") == 0


@pytest.mark.parametrize("name", DATASETS)
def test_values_stay_within_public_keys(name: str, policies, con) -> None:
    for column, spec in policies[name].columns.items():
        if spec.keys is not None:
            seen = {r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM {name}").fetchall()}
            assert seen <= set(spec.keys), f"{name}.{column}: values outside the public keys"


def test_one_row_per_unit_where_the_policy_says_so(policies, con) -> None:
    for name in DATASETS:
        policy = policies[name]
        if policy.privacy_unit is not None and policy.privacy_unit.max_rows == 1:
            rows, units = one(con, f"SELECT count(*), count(DISTINCT {policy.unit}) FROM {name}")
            assert rows == units, f"{name}: max_rows 1 but some unit has several rows"


# -- plausibility ----------------------------------------------------------------------------

def test_residents(policies, con) -> None:
    assert one(con, "SELECT count(*) FROM residents") == SCALE
    assert one(con, "SELECT min(person_id), max(person_id) FROM residents") == (1, SCALE)
    assert one(con, "SELECT count(DISTINCT district) FROM residents") == 6
    assert one(con, "SELECT min(age), max(age) FROM residents") == (0, 100)
    # unequal district sizes that follow the census: Siming largest, Xiang'an smallest
    shares = dict(con.execute("SELECT district, count(*) / sum(count(*)) OVER () "
                              "FROM residents GROUP BY district").fetchall())
    total = sum(d[2] for d in DISTRICTS)
    for name, _, population, _ in DISTRICTS:
        assert shares[name] == pytest.approx(population / total, abs=0.02)
    # right-skewed income with outliers the policy's bound clamps; children earn nothing
    mean, median = one(con, "SELECT avg(monthly_income), median(monthly_income) FROM residents")
    assert mean > 1.3 * median
    hi = policies["residents"].columns["monthly_income"].bounds[1]
    assert one(con, f"SELECT count(*) FROM residents WHERE monthly_income > {hi}") > 0
    assert one(con, "SELECT max(monthly_income) FROM residents WHERE age < 16") == 0
    assert one(con, "SELECT min(household_size), max(household_size) FROM residents") == (1, 8)


def test_social_insurance_has_many_rows_per_person(con) -> None:
    most, mean = one(con, "SELECT max(n), avg(n) FROM (SELECT count(*) AS n FROM "
                          "social_insurance GROUP BY person_id)")
    assert most >= 12 and mean > 3
    per_resident = one(con, "SELECT count(*) FROM social_insurance") / SCALE
    assert 3 <= per_resident <= 5
    assert one(con, "SELECT min(month), max(month) FROM social_insurance") == (
        one(con, "SELECT DATE '2024-01-01'"), one(con, "SELECT DATE '2025-12-01'"))
    assert one(con, "SELECT count(*) FROM social_insurance WHERE day(month) <> 1") == 0
    # one row per person and month; only residents aged 18..64 with an income are insured
    assert one(con, "SELECT count(*) - count(DISTINCT (person_id, month)) "
                    "FROM social_insurance") == 0
    assert one(con, "SELECT count(*) FROM social_insurance s JOIN residents r USING (person_id) "
                    "WHERE r.age NOT BETWEEN 18 AND 64 OR r.monthly_income = 0") == 0


def test_medical_visits_have_a_long_tail(con) -> None:
    rows = one(con, "SELECT count(*) FROM medical_visits")
    assert 1.5 * SCALE <= rows <= 2.5 * SCALE
    most, heavy = one(con, "SELECT max(n), count(*) FILTER (WHERE n >= 50) FROM "
                           "(SELECT count(*) AS n FROM medical_visits GROUP BY person_id)")
    assert most >= 30 and heavy >= 3
    mean, median = one(con, "SELECT avg(cost), median(cost) FROM medical_visits")
    assert mean > 1.3 * median
    assert one(con, "SELECT count(*) FROM medical_visits WHERE cost > 20000") > 0
    assert one(con, "SELECT count(*) FROM medical_visits WHERE department = 'pediatrics'") > 0


def test_enterprises(con) -> None:
    rows, ids = one(con, "SELECT count(*), count(DISTINCT enterprise_id) FROM enterprises")
    assert rows == ids == SCALE // 20
    assert one(con, "SELECT count(DISTINCT industry) FROM enterprises") == 10
    lo, hi = one(con, "SELECT min(founded_year), max(founded_year) FROM enterprises")
    assert 1980 <= lo and hi <= 2025
    mean, median, most = one(con, "SELECT avg(employees), median(employees), max(employees) "
                                  "FROM enterprises")
    assert mean > 2 * median and most > 50 * median  # heavy-tailed


def test_district_reference_is_the_census(con) -> None:
    assert one(con, "SELECT count(*), sum(population) FROM district_reference") == (6, 5_163_970)
    assert one(con, "SELECT round(sum(land_area_km2)) FROM district_reference") == 1701


# -- determinism -----------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = build_demo(tmp_path / "a", scale=2_000, seed=7)
    b = build_demo(tmp_path / "b", scale=2_000, seed=7)
    c = build_demo(tmp_path / "c", scale=2_000, seed=8)
    assert set(a) == set(DATASETS)
    for name in DATASETS:
        assert sha256(a[name]) == sha256(b[name]), name
    for name in set(DATASETS) - {"district_reference"}:
        assert sha256(a[name]) != sha256(c[name]), name
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")], "no leftovers"


def test_rejects_nonsense_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        build_demo(tmp_path, scale=0)
    with pytest.raises(ValueError, match="seed"):
        build_demo(tmp_path, seed=1.5)  # type: ignore[arg-type]


# -- the real census samples: their policies tell the truth about the files ------------------

@pytest.mark.parametrize("name", ["pums_pid", "pums_null"])
def test_pums_policy_matches_the_csv(name: str, policies) -> None:
    policy, file = load_policies(POLICY_DIR)[name]
    location = policy.resolve_location(file.parent)
    assert Path(location).is_file(), location
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_csv({location!r}, all_varchar = true)")
    assert [r[0] for r in con.execute("DESCRIBE t").fetchall()] == list(policy.columns)
    for column, spec in policy.columns.items():
        if spec.keys is not None:
            seen = {r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM t "
                                              f"WHERE {column} IS NOT NULL").fetchall()}
            assert seen <= set(spec.keys), column
        if spec.bounds is not None:
            lo, hi = one(con, f"SELECT min({column}::DOUBLE), max({column}::DOUBLE) FROM t")
            assert spec.bounds[0] <= lo and hi <= spec.bounds[1], column
        nulls = one(con, f"SELECT count(*) FROM t WHERE {column} IS NULL")
        assert (nulls > 0) == spec.nullable, f"{column}: nullable says {spec.nullable}"
    most = one(con, "SELECT max(n) FROM (SELECT count(*) AS n FROM t WHERE pid IS NOT NULL "
                    "GROUP BY pid)")
    assert most == policy.privacy_unit.max_rows, "max_rows keeps every identified person whole"
