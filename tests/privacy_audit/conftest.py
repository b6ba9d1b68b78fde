"""Neighbouring catalogs for the audit: the same dataset registered twice with the SAME server
secret, once whole and once without one privacy unit, so every other unit's keyed row choice is
identical and the two catalogs differ by exactly that unit (user-level neighbours).

- PUMS_null without its 88-row NULL-pid unit (real data; the heaviest unit the sandbox has).
- `audit_people`, a small constructed dataset whose removed unit is the worst case by design:
  max_rows rows, each at the income bound (so a SUM moves by exactly its sensitivity), and the
  only unit with the region key `rare` (so a private-key GROUP BY lists `rare` only in D).
- `audit_people` again, but the removed unit has rows in two regions (`rare` and `north`), so
  `region` is constant within every unit of D' but not of D.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from sandbox.catalog import Catalog
from sandbox.policy import Policy, load_policy
from tests.conftest import POLICIES, PUMS
from tests.privacy_audit.sampling import Sampler, sampler

SECRET = bytes(range(32))

PEOPLE_POLICY = """
name: audit_people
title: Constructed people for the privacy audit
description: A few hundred units with up to four rows; unit 0 is the worst-case neighbour.
owner: tests
source: {kind: csv, location: people.csv}
privacy_unit: {column: uid, max_rows: 4, max_groups: 2}
columns:
  uid: {role: identifier, type: BIGINT}
  region: {role: dimension, type: VARCHAR}
  age: {role: dimension, type: INTEGER, bounds: [0, 100]}
  income: {role: measure, type: DOUBLE, bounds: [0, 1000]}
limits: {max_epsilon_per_query: 1.0}
"""


def _register(root: Path, policy: Policy, csv: Path) -> Catalog:
    root.mkdir()
    (root / "secret.key").write_bytes(SECRET)
    policy = policy.model_copy(update={"source": policy.source.model_copy(update={"location": str(csv)})})
    catalog = Catalog(root)
    catalog.register(policy)
    return catalog


def _pums(root: Path, keep: str) -> Catalog:
    root.mkdir()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{PUMS / 'PUMS_null.csv'}', all_varchar = true) WHERE {keep}) "
        f"TO '{root / 'pums.csv'}' (HEADER)"
    )
    con.close()
    return _register(root / "catalog", load_policy(POLICIES / "pums_null.yaml"), root / "pums.csv")


def _people_rows(spanning: bool) -> list[tuple[int, str, int, float]]:
    rng = random.Random(2026)
    rows = [(0, "rare", 90, 1000.0)] + [(0, "north" if spanning else "rare", 90, 1000.0)] * 3  # the removed unit
    for uid in range(1, 41):
        region = rng.choice(["north", "south"])
        for _ in range(rng.randint(1, 4)):
            rows.append((uid, region, rng.randint(18, 80), float(rng.randint(0, 1000))))
    return rows


def _people(root: Path, without_unit_zero: bool, spanning: bool = False) -> Catalog:
    root.mkdir()
    rows = [r for r in _people_rows(spanning) if not (without_unit_zero and r[0] == 0)]
    csv = root / "people.csv"
    csv.write_text("uid,region,age,income\n" + "".join(f"{u},{g},{a},{i}\n" for u, g, a, i in rows))
    return _register(root / "catalog", Policy.model_validate(yaml.safe_load(PEOPLE_POLICY)), csv)


@pytest.fixture(scope="session")
def neighbours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Catalog, Catalog]]:
    """dataset -> (D, D'): D' is D without its worst-case unit."""
    root = tmp_path_factory.mktemp("privacy-audit")
    return {
        "pums_null": (_pums(root / "pums_full", "true"), _pums(root / "pums_no_null", "pid IS NOT NULL")),
        "audit_people": (_people(root / "people_full", False), _people(root / "people_no_0", True)),
        "audit_people, unit 0 in two regions": (
            _people(root / "spanning_full", False, spanning=True),
            _people(root / "spanning_no_0", True, spanning=True),
        ),
    }


@pytest.fixture(scope="session")
def releases() -> Iterator[Sampler]:
    with sampler() as started:
        yield started
