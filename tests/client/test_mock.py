"""Mock rows obey the policy (types, bounds, keys, nullability, the privacy unit) on every
dataset of the catalog — the demo city and the PUMS samples — and come from the policy alone."""

from __future__ import annotations

import datetime as dt

import httpx
import polars as pl
import pytest

from sandbox.client import Sandbox
from sandbox.errors import SQLRejected
from sandbox.mock import POLARS_TYPES, mock_frame

DATASETS = ["district_reference", "enterprises", "medical_visits", "pums_null", "pums_pid", "residents",
            "social_insurance"]


class _Recorder(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


@pytest.fixture(scope="module")
def recorded(live) -> tuple[Sandbox, _Recorder]:
    transport = _Recorder()
    return Sandbox(live.url, live.tokens["developer"], transport=transport), transport


def test_the_catalog_is_what_we_check(recorded) -> None:
    sb, _ = recorded
    assert sorted(sb.datasets()["name"]) == DATASETS


@pytest.mark.parametrize("name", DATASETS)
def test_mock_rows_obey_the_policy(recorded, name: str) -> None:
    sb, transport = recorded
    policy = sb.describe(name).raw
    transport.calls.clear()
    frame = sb.mock(name, rows=3000, seed=7)
    assert transport.calls == []  # the policy was already here: nothing else is asked for
    assert frame.height == 3000 and frame.columns == list(policy["columns"])
    for column, spec in policy["columns"].items():
        values = frame[column]
        assert values.dtype == POLARS_TYPES[spec["type"]], column
        present = values.drop_nulls()
        if spec.get("nullable"):
            assert 0 < values.null_count() < 0.15 * frame.height, column
        else:
            assert values.null_count() == 0, column
        if spec.get("bounds"):
            lo, hi = spec["bounds"]
            if spec["type"] == "DATE":  # published as ISO dates
                lo, hi = dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)
            assert lo <= present.min() and present.max() <= hi, column
        if spec.get("keys"):
            keys = {str(k) for k in spec["keys"]}
            assert {str(v) for v in present.unique()} <= keys, column
            assert present.n_unique() >= min(len(keys), 2), column
    unit = policy.get("privacy_unit")
    if unit:
        per_unit = frame[unit["column"]].drop_nulls().value_counts()["count"]
        if unit["max_rows"] == 1:
            assert per_unit.max() == 1
        else:  # a long tail, sometimes beyond max_rows: what the sandbox's bounding is for
            assert per_unit.min() == 1 and per_unit.max() > unit["max_rows"]


@pytest.mark.parametrize("name", DATASETS)
def test_mock_is_deterministic_and_skewed(recorded, name: str) -> None:
    sb, _ = recorded
    first, again, other = sb.mock(name, 500, seed=1), sb.mock(name, 500, seed=1), sb.mock(name, 500, seed=2)
    assert first.equals(again) and not first.equals(other)
    measures = [c for c, spec in sb.describe(name).columns.items() if spec["role"] == "measure"]
    for column in measures:  # right-skewed: the mean lies above the median
        values = sb.mock(name, 3000, seed=3)[column].drop_nulls().cast(pl.Float64)
        assert values.mean() > values.median(), column


def test_mock_frame_handles_every_type() -> None:
    policy = {"name": "all", "privacy_unit": {"column": "uid", "max_rows": 3}, "columns": {
        "uid": {"role": "identifier", "type": "INTEGER"},
        "tiny": {"role": "measure", "type": "TINYINT", "bounds": [-5, 5]},
        "small": {"role": "dimension", "type": "SMALLINT", "keys": [10, 20]},
        "ratio": {"role": "measure", "type": "FLOAT", "bounds": [0.5, 1.5], "nullable": True},
        "flag": {"role": "dimension", "type": "BOOLEAN"},
        "day": {"role": "dimension", "type": "DATE", "keys": ["2025-01-01", "2025-06-30"]},
        "month": {"role": "dimension", "type": "DATE"},
        "seen": {"role": "dimension", "type": "TIMESTAMP"},
        "label": {"role": "dimension", "type": "VARCHAR"},
        "other_id": {"role": "identifier", "type": "BIGINT"},
    }}
    frame = mock_frame(policy, rows=400)
    assert dict(frame.schema) == {c: POLARS_TYPES[s["type"]] for c, s in policy["columns"].items()}
    assert frame["tiny"].min() >= -5 and frame["tiny"].max() <= 5
    assert set(frame["small"]) == {10, 20} and set(frame["day"]) == {dt.date(2025, 1, 1), dt.date(2025, 6, 30)}
    assert (frame["month"].dt.day() == 1).all()  # a month column holds first days of months
    assert frame["flag"].any() and not frame["flag"].all()
    assert frame["label"].str.starts_with("label_").all()
    assert frame["uid"].value_counts()["count"].max() > 3
    assert mock_frame(policy, rows=0).height == 0
    with pytest.raises(ValueError):
        mock_frame(policy, rows=-1)


def test_mock_query_runs_locally_and_spends_nothing(live, developer) -> None:
    transport = _Recorder()
    sb = Sandbox(live.url, live.tokens["developer"], agreement=developer.default_agreement, transport=transport)
    before = developer.budget().spent_epsilon
    sql = ("SELECT hospital, COUNT(*) AS visits, AVG(cost) AS avg_cost, COUNT(DISTINCT person_id) AS people "
           "FROM medical_visits GROUP BY hospital ORDER BY visits DESC")
    result = sb.mock_query(sql, rows=5000, seed=4)
    assert result.mock and result.mock_rows == 5000 and result.charge_epsilon == 0 and result.job_id is None
    assert result.columns == ["hospital", "visits", "avg_cost", "people"]
    table = result.to_polars()
    assert table["visits"].sum() == 5000 and table["visits"].is_sorted(descending=True)
    assert (table["people"] < table["visits"]).all()  # several visits per person, as in the policy
    assert sorted(set(transport.calls)) == ["GET /datasets/medical_visits", "POST /explain"]  # no job, no rows
    assert developer.budget().spent_epsilon == before


def test_mock_query_checks_first_that_the_sandbox_would_accept_the_sql(developer) -> None:
    with pytest.raises(SQLRejected, match="line 1, column 8"):
        developer.mock_query("SELECT * FROM residents")
    rows = developer.mock_query("SELECT * FROM residents LIMIT 3", rows=10, check=False)  # local only: allowed
    assert len(rows) == 3 and "MOCK DATA" in repr(rows)
    with pytest.raises(SQLRejected, match="does not parse"):
        developer.mock_query("SELEC nonsense FROM", check=False)
