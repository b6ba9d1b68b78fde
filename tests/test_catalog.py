"""Registration: idempotent, re-checks the schema, never lists rows, ranks are keyed."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sandbox.catalog import Catalog
from sandbox.errors import DatasetNotFound, SchemaMismatch
from sandbox.policy import load_policy
from tests.conftest import POLICIES


@pytest.fixture()
def pums_catalog(tmp_path) -> Catalog:
    catalog = Catalog(tmp_path)
    catalog.register(load_policy(POLICIES / "pums_null.yaml"), POLICIES / "pums_null.yaml")
    return catalog


def test_registration_is_idempotent_also_for_csv(pums_catalog) -> None:
    manifest = pums_catalog.get("pums_null").manifest
    again = pums_catalog.register(load_policy(POLICIES / "pums_null.yaml"), POLICIES / "pums_null.yaml")
    assert again.manifest["registered_at"] == manifest["registered_at"], "unchanged source: not rebuilt"


def test_managed_files_are_read_only_and_ranked(pums_catalog) -> None:
    dataset = pums_catalog.get("pums_null")
    for path in (dataset.parquet_path, dataset.engine_path):
        assert path.stat().st_mode & 0o222 == 0
    data = pl.read_parquet(dataset.parquet_path)
    ranks = data.group_by("pid").agg(pl.col("__rank").sort())
    assert all(r.to_list() == list(range(1, len(r) + 1)) for r in ranks["__rank"])
    assert dataset.max_rows_per_unit == 88 and dataset.manifest["null_unit_rows"] == 88


def test_rank_depends_on_the_secret(tmp_path) -> None:
    orders = []
    for name in ("a", "b"):
        catalog = Catalog(tmp_path / name)
        catalog.register(load_policy(POLICIES / "pums_null.yaml"), POLICIES / "pums_null.yaml")
        data = pl.read_parquet(catalog.get("pums_null").parquet_path).filter(pl.col("pid").is_null())
        orders.append(data.sort("__rank")["age"].to_list())
    assert orders[0] != orders[1], "a different server secret chooses different rows"


def test_describe_never_shows_rows_or_statistics(pums_catalog) -> None:
    text = json.dumps(pums_catalog.get("pums_null").describe())
    assert "rows" not in json.loads(text) and "max_rows_per_unit" not in text
    assert "null_unit_rows" not in text


def test_unknown_dataset_suggests(pums_catalog) -> None:
    with pytest.raises(DatasetNotFound, match="Did you mean 'pums_null'"):
        pums_catalog.get("pums_nul")


def test_schema_rechecked_on_registration(tmp_path) -> None:
    policy = load_policy(POLICIES / "pums_null.yaml")
    columns = dict(policy.columns) | {"zipcode": policy.columns["sex"]}
    broken = policy.model_copy(update={"columns": columns})
    with pytest.raises(SchemaMismatch, match="zipcode"):
        Catalog(tmp_path).register(broken, POLICIES / "pums_null.yaml")


def test_a_column_not_declared_nullable_must_hold_no_null(tmp_path) -> None:
    """`nullable: false` (the default) is verified: the compiler relies on it to count COUNT(x)
    as COUNT(*). The error names the column and the fix."""
    policy = load_policy(POLICIES / "pums_null.yaml")
    columns = dict(policy.columns) | {"income": policy.columns["income"].model_copy(update={"nullable": False})}
    with pytest.raises(SchemaMismatch, match=r"'income' has \d+ NULL value\(s\).*nullable: true"):
        Catalog(tmp_path).register(policy.model_copy(update={"columns": columns}), POLICIES / "pums_null.yaml")


def test_verified_non_null_columns_are_recorded(demo_catalog) -> None:
    residents = demo_catalog.get("residents")
    assert "monthly_income" in residents.non_null_columns and "person_id" not in residents.non_null_columns
    assert demo_catalog.get("pums_null").non_null_columns.isdisjoint({"income", "age", "sex"})
