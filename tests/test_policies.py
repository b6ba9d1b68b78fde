"""Malformed policies fail at load time with a PolicyError that names the file and the field,
so an operator can fix the YAML without reading a traceback."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.errors import PolicyError
from sandbox.policy import load_policies, load_policy

VALID: dict[str, Any] = {
    "name": "residents",
    "title": "Residents",
    "description": "One row per resident.",
    "owner": "Public Security Bureau",
    "domain": "person",
    "source": {"kind": "parquet", "location": "{data_dir}/demo/residents.parquet"},
    "privacy_unit": {"column": "person_id", "max_rows": 1, "max_groups": 1},
    "columns": {
        "person_id": {"role": "identifier", "type": "BIGINT"},
        "district": {"role": "dimension", "type": "VARCHAR", "keys": ["Siming", "Huli"]},
        "age": {"role": "dimension", "type": "INTEGER", "bounds": [0, 100]},
        "monthly_income": {"role": "measure", "type": "DOUBLE", "bounds": [0, 100000]},
    },
    "limits": {"max_epsilon_per_query": 1.0, "min_count": 0, "round_to": 1},
    "default_delta": 1e-7,
}

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets one dotted field of the valid policy."""
    *parents, leaf = path.split(".")

    def edit(policy: dict[str, Any]) -> None:
        node = policy
        for part in parents:
            node = node[part]
        node[leaf] = value

    return edit


def _drop(path: str) -> Edit:
    *parents, leaf = path.split(".")

    def edit(policy: dict[str, Any]) -> None:
        node = policy
        for part in parents:
            node = node[part]
        del node[leaf]

    return edit


# (case id, edit of the valid policy, field named in the error, words the message must contain)
CASES: list[tuple[str, Edit, str, str]] = [
    ("measure-without-bounds", _drop("columns.monthly_income.bounds"),
     "columns.monthly_income", "needs public `bounds"),
    ("bounds-reversed", _set("columns.monthly_income.bounds", [100000, 0]),
     "columns.monthly_income.bounds", "reversed"),
    ("bounds-empty", _set("columns.age.bounds", [5, 5]), "columns.age.bounds", "reversed or empty"),
    ("bounds-infinite", _set("columns.monthly_income.bounds", [0, float("inf")]),
     "columns.monthly_income.bounds", "finite"),
    ("unknown-role", _set("columns.monthly_income.role", "metric"),
     "columns.monthly_income.role", "'measure'"),
    ("unit-not-declared", _set("privacy_unit.column", "citizen_id"),
     "privacy_unit.column", "'citizen_id' is not among the declared columns"),
    ("unit-not-identifier", _set("privacy_unit.column", "district"),
     "privacy_unit.column", "'district' must have role: identifier"),
    ("unit-missing", _drop("privacy_unit"), "privacy_unit", "required (or set public: true"),
    ("public-with-unit", _set("public", True),
     "privacy_unit", "a public dataset has no privacy_unit"),
    ("unknown-type", _set("columns.age.type", "INT128"), "columns.age.type", "unknown type"),
    ("unknown-top-level-field", _set("privacy_units", {"column": "person_id", "max_rows": 1}),
     "privacy_units", "unknown field"),
    ("unknown-column-field", _set("columns.age.bound", [0, 100]),
     "columns.age.bound", "unknown field"),
    ("keys-on-measure", _set("columns.monthly_income.keys", [0, 1000]),
     "columns.monthly_income", "only a dimension may declare public `keys`"),
    ("duplicate-keys", _set("columns.district.keys", ["Huli", "Huli"]),
     "columns.district", "without duplicates"),
    ("bounds-on-text", _set("columns.district.bounds", [0, 1]),
     "columns.district", "only apply to numeric and DATE columns"),
    ("max-rows-zero", _set("privacy_unit.max_rows", 0), "privacy_unit.max_rows", "greater than"),
    ("max-groups-zero", _set("privacy_unit.max_groups", 0),
     "privacy_unit.max_groups", "greater than"),
    ("negative-epsilon-limit", _set("limits.max_epsilon_per_query", -1.0),
     "limits.max_epsilon_per_query", "greater than 0"),
    ("round-to-zero", _set("limits.round_to", 0), "limits.round_to", "greater than"),
    ("delta-too-large", _set("default_delta", 1e-3), "default_delta", "less than 0.001"),
    ("bad-dataset-name", _set("name", "Residents-2024"), "name", "lower-case letters"),
    ("bad-column-name", _set("columns.Age", {"role": "dimension", "type": "INTEGER"}),
     "columns", "column name 'Age'"),
    ("no-columns", _set("columns", {}), "columns", "at least one column"),
    ("missing-owner", _drop("owner"), "owner", "required field is missing"),
]


@pytest.mark.parametrize(("edit", "field", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_malformed_policy(tmp_path: Path, edit: Edit, field: str, words: str) -> None:
    policy = copy.deepcopy(VALID)
    edit(policy)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    err = caught.value
    assert err.fields["field"] == field
    assert err.fields["file"] == str(path)
    assert str(path) in err.message and field in err.message
    assert words in err.message
    assert err.status == 400 and err.to_dict()["code"] == "policy_invalid"


# Files that are not a policy-shaped YAML mapping at all.
RAW_CASES = [
    ("not-a-mapping", "- name: residents\n- title: Residents\n",
     "(top level)", "expected a mapping"),
    ("empty-file", "", "(top level)", "expected a mapping"),
    ("invalid-yaml", "name: residents\ncolumns: {person_id: [\n", "line 3", "not valid YAML"),
    ("tab-indented", "name: residents\ncolumns:\n\tage: 1\n", "line 3", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "field", "words"), [c[1:] for c in RAW_CASES],
                         ids=[c[0] for c in RAW_CASES])
def test_unreadable_policy(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.fields["field"] == field
    assert str(path) in caught.value.message and words in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "absent.yaml")
    assert caught.value.fields["field"] == "(file)"
    assert str(tmp_path / "absent.yaml") in caught.value.message


def test_valid_policy_loads(tmp_path: Path) -> None:
    path = tmp_path / "residents.yaml"
    path.write_text(yaml.safe_dump(VALID), encoding="utf-8")
    policy = load_policy(path)
    assert policy.unit == "person_id"
    assert policy.columns["monthly_income"].bounds == (0, 100000)


def test_duplicate_dataset_names(tmp_path: Path) -> None:
    for file in ("a.yaml", "b.yaml"):
        (tmp_path / file).write_text(yaml.safe_dump(VALID), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    err = caught.value
    assert err.fields["field"] == "name"
    assert str(tmp_path / "b.yaml") in err.message, "names the second file"
    assert str(tmp_path / "a.yaml") in err.message, "and where the name is already defined"


def test_one_bad_file_fails_the_directory(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(VALID), encoding="utf-8")
    broken = copy.deepcopy(VALID)
    broken["name"] = "other"
    del broken["columns"]["monthly_income"]["bounds"]
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    assert caught.value.fields["file"] == str(tmp_path / "other.yaml")


def test_unit_errors_point_at_the_unit_field(tmp_path: Path) -> None:
    policy = copy.deepcopy(VALID)
    policy["privacy_unit"]["column"] = "citizen_id"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.fields["field"] == "privacy_unit.column"
