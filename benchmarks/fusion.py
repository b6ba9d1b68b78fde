"""A join query at 1M persons: `Engine.run` beside DuckDB running the engine's *same* bounded SQL
directly on a warm connection, interleaved, so the ratio is the cost of isolation and noise on
a fused query (issue 7's target: within 2x).

    python -m benchmarks.fusion --persons 1000000 --runs 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUERIES = {
    "visits by district (join)": (
        "SELECT r.district, COUNT(*), AVG(m.cost) FROM residents r JOIN medical_visits m "
        "ON r.person_id = m.person_id GROUP BY r.district"),
    "costs of high contributors (join + pre-aggregation)": (
        "SELECT r.district, SUM(m.cost) FROM medical_visits m JOIN residents r ON m.person_id = r.person_id "
        "JOIN (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) s "
        "ON s.person_id = m.person_id WHERE s.total > 20000 GROUP BY r.district"),
}


def main(argv: list[str] | None = None) -> dict:
    from sandbox.catalog import Catalog
    from sandbox.demo import build_demo
    from sandbox.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    data_dir = HERE / "data" / f"fusion-{args.persons}"
    if not (data_dir / "demo" / "residents.parquet").exists():
        print(f"building the demo city at {args.persons:,} residents", flush=True)
        build_demo(data_dir / "demo", scale=args.persons)
    catalog = Catalog(data_dir)
    for name in ("residents", "medical_visits", "social_insurance"):
        from sandbox.policy import load_policy

        catalog.register(load_policy(REPO / "policies" / f"{name}.yaml"), REPO / "policies" / f"{name}.yaml")
    results = []
    with Engine(catalog, workers=2) as engine:
        for label, sql in QUERIES.items():
            plan = engine.explain(sql, epsilon=1.0)
            direct = duckdb.connect(config={"threads": "2"})
            for alias, path in plan.attach.items():
                direct.execute(f"ATTACH '{path}' AS \"{alias}\" (READ_ONLY)")
            times: dict[str, list[float]] = {"bounded SQL in DuckDB": [], "engine": []}
            for run in range(args.runs + 1):  # the first round warms up
                for name in (list(times) if run % 2 == 0 else list(reversed(times))):
                    start = time.perf_counter()
                    if name == "engine":
                        engine.run(sql, epsilon=1.0)
                    else:
                        direct.execute(plan.aggregate_sql).fetchall()
                    if run:
                        times[name].append(time.perf_counter() - start)
            direct.close()
            medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
            results.append({"query": label, "sql": sql, "ms": medians,
                            "ratio": medians["engine"] / medians["bounded SQL in DuckDB"]})
            print(f"{label}: {medians} ratio {results[-1]['ratio']:.2f}", flush=True)
    lines = ["| query | DuckDB, same bounded SQL | engine | ratio | target |", "|---|---|---|---|---|"]
    for r in results:
        met = "met" if r["ratio"] <= 2 else "not met"
        lines.append(f"| {r['query']} | {r['ms']['bounded SQL in DuckDB']:.0f} ms | {r['ms']['engine']:.0f} ms | "
                     f"{r['ratio']:.2f}x | <= 2x: {met} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fusion.json").write_text(json.dumps({"persons": args.persons, "results": results}, indent=2))
    (args.out / "fusion.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"results": results}


if __name__ == "__main__":
    main()
