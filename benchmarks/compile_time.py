"""Compile time of the quickstart notebook's queries (median of repeated compiles).

    python -m benchmarks.compile_time [--repeat N]

Builds the demo city at a small scale in a temporary directory, then times `compile_query` alone
(parse, bind, validate, plan, generate): what a developer waits for before anything runs. The plan
cache is off here (sandbox/compiler/cache.py): a query asked again is a lookup, not a compile."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query
from sandbox.compiler.cache import PLANS
from sandbox.demo import build_demo

REPO = Path(__file__).resolve().parents[1]

QUICKSTART = {
    "grouped count + avg": "SELECT district, COUNT(*) AS residents, AVG(monthly_income) AS avg_income "
    "FROM residents GROUP BY district ORDER BY district",
    "fused join + pre-aggregation": """
SELECT r.district, COUNT(*) AS persons, AVG(m.cost) AS avg_cost
FROM medical_visits m
JOIN residents r ON r.person_id = m.person_id
JOIN (SELECT person_id, SUM(contribution) AS total
      FROM social_insurance GROUP BY person_id) AS s ON s.person_id = m.person_id
WHERE s.total > 20000
GROUP BY r.district
ORDER BY r.district""",
    "count + median by sex": "SELECT sex, COUNT(*) AS people, MEDIAN(age) AS median_age FROM residents GROUP BY sex",
    "count by household size": "SELECT household_size, COUNT(*) AS households FROM residents "
    "GROUP BY household_size ORDER BY household_size",
}


def measure(catalog: Catalog, repeat: int) -> dict[str, float]:
    with PLANS.disabled():
        return _measure(catalog, repeat)


def _measure(catalog: Catalog, repeat: int) -> dict[str, float]:
    medians = {}
    for name, sql in QUICKSTART.items():
        compile_query(sql, catalog, epsilon=0.5)  # warm caches, as a running server has them
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            compile_query(sql, catalog, epsilon=0.5)
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times) * 1000
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_demo(Path(tmp) / "demo", scale=2_000)
        catalog = Catalog(tmp)
        catalog.register_directory(REPO / "policies")
        for name, ms in measure(catalog, args.repeat).items():
            print(f"{ms:7.2f} ms  {name}")


if __name__ == "__main__":
    main()
