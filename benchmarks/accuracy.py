"""Accuracy at equal epsilon: many independent releases of each suite query by our engine,
SmartNoise SQL and OpenDP on the same data (100k rows by default), against the exact answer.

For every query, output column and system: the mean absolute error and the 95th-percentile
absolute error over all released cells (releases x groups), where the exact answer is DuckDB's
with measures clamped to the shared public bounds (clamping bias is the same for every system
and would otherwise swamp the sums), but without per-person bounding: for `visits`, keeping at
most 4 rows per person is part of the error, alike for all. For private
keys, a true group a system does not release counts with error = its true value (as if it
were released as 0), and the share of true groups released is reported too; keys a system
releases that do not exist (none should) are counted.

Our releases run in-process (`Engine.run`, 2 workers); each peer gets one job asking for all
releases (OpenDP plans the measurement once and invokes it per release; SmartNoise executes
the query per release).
"""

from __future__ import annotations

import math
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.suite import COST, DELTA, EPSILON, INCOME, QUERIES, Query

__all__ = ["errors", "main"]

MEASURES = {"people": {"income": INCOME}, "visits": {"cost": COST}}
MEDIAN_FACTOR = 1.5  # goal: median within 1.5x of the best peer


def _key(row: dict[str, Any], column: str | None) -> str:
    return "" if column is None else str(row[column])


def exact_answers(query: Query, parquet: str) -> dict[str, dict[str, float]]:
    """The exact answer with measures clamped to the policy bounds (every system clamps to the
    same bounds, so the clamping bias is the same for all and left out of the comparison)."""
    clamp = ", ".join(f'LEAST(GREATEST({c}, {lo!r}), {hi!r}) AS {c}' for c, (lo, hi) in MEASURES[query.table].items())
    sql = query.sql.format(table=f"(SELECT * REPLACE ({clamp}) FROM read_parquet('{parquet}'))")
    con = duckdb.connect()
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()
    return {_key(r, query.key_column): {c: float(r[c]) for c in query.kinds} for r in rows}


def errors(query: Query, exact: dict[str, dict[str, float]], releases: list[list[dict]]) -> dict[str, Any]:
    """Per output column: MAE, p95, its standard error, released share, spurious keys."""
    out: dict[str, Any] = {}
    for column, kind in query.kinds.items():
        cells: list[float] = []
        released = spurious = 0
        for rows in releases:
            by_key = {_key(r, query.key_column): r for r in rows}
            spurious += len(set(by_key) - set(exact))
            for key, truth in exact.items():
                value = by_key.get(key, {}).get(column)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    cells.append(abs(truth[column]))
                else:
                    released += 1
                    cells.append(abs(float(value) - truth[column]))
        cells.sort()
        n = len(cells)
        mae = sum(cells) / n
        out[column] = {
            "kind": kind,
            "mae": mae,
            "p95": cells[min(n - 1, math.ceil(0.95 * n) - 1)],
            "se": statistics.stdev(cells) / math.sqrt(n) if n > 1 else 0.0,
            "cells": n,
            "released_share": released / n,
            "spurious_keys": spurious,
        }
    return out


def _ours(engine: Any, query: Query, releases: int) -> tuple[list[list[dict]], float]:
    sql = query.sql.format(table=query.table)
    start = time.perf_counter()
    values = [engine.run(sql, epsilon=EPSILON).table.to_dicts() for _ in range(releases)]
    return values, (time.perf_counter() - start) / releases


def _summary(name: str, system: dict[str, Any]) -> str:
    if "errors" not in system:
        return f"{name} {system['error'][:60]}"
    maes = ", ".join(f"{column}={e['mae']:.4g}" for column, e in system["errors"].items())
    return f"{name} MAE {maes}"


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Ours against the best peer per query column: the goals of issue 8."""
    rows = []
    for query in QUERIES:
        systems = results["queries"][query.id]["systems"]
        for column, kind in query.kinds.items():
            ours = systems.get("engine", {}).get("errors", {}).get(column)
            peers = {
                name: s["errors"][column]
                for name, s in systems.items()
                if name != "engine" and "errors" in s
            }
            if ours is None or not peers:
                rows.append({"query": query.id, "column": column, "kind": kind, "best_peer": None, "met": None})
                continue
            best_name, best = min(peers.items(), key=lambda item: item[1]["mae"])
            ratio = ours["mae"] / best["mae"] if best["mae"] else math.inf
            noise = 2 * math.sqrt(ours["se"] ** 2 + best["se"] ** 2)
            if kind == "median":
                goal, met = f"<= {MEDIAN_FACTOR:g}x best peer", ours["mae"] <= MEDIAN_FACTOR * best["mae"]
            else:
                goal = "<= best peer (within 2 standard errors)"
                met = ours["mae"] <= best["mae"] + noise
            rows.append(
                {
                    "query": query.id,
                    "column": column,
                    "kind": kind,
                    "best_peer": best_name,
                    "ours_mae": ours["mae"],
                    "best_mae": best["mae"],
                    "ratio": ratio,
                    "noise": noise,
                    "goal": goal,
                    "met": met,
                }
            )
    return rows


def main(
    rows: int = 100_000,
    releases: int = 200,
    *,
    data_dir: Path,
    no_peers: bool = False,
) -> dict[str, Any]:
    from benchmarks.peers import WORKERS, log, prepare, start_peers
    from sandbox.catalog import Catalog
    from sandbox.engine import Engine

    log(f"[accuracy] {rows:,} rows, {releases} releases per query and system")
    prepare(rows, Path(data_dir))
    directory = (Path(data_dir) / str(rows)).resolve()
    paths = {table: str(directory / f"{table}.parquet") for table in ("people", "visits")}
    processes, blocked, envs = start_peers(rows, Path(data_dir), rows, no_peers)
    results: dict[str, Any] = {"rows": rows, "releases": releases, "epsilon": EPSILON, "delta": DELTA,
                               "date": datetime.now(UTC).isoformat(timespec="seconds"), "blocked": blocked,
                               "queries": {}}
    try:
        with Engine(Catalog(directory), workers=WORKERS) as engine:
            for query in QUERIES:
                exact = exact_answers(query, paths[query.table])
                systems: dict[str, Any] = {}
                values, per_release = _ours(engine, query, releases)
                systems["engine"] = {"errors": errors(query, exact, values), "seconds_per_release": per_release}
                for name, process in processes.items():
                    start = time.perf_counter()
                    answer = process.ask(
                        {"query": query.job(), "data": paths, "epsilon": EPSILON, "delta": DELTA,
                         "reps": releases, "values": True}
                    )
                    if not answer["ok"]:
                        kind = "unsupported" if answer.get("unsupported") else "failed"
                        systems[name] = {"error": f"{kind}: {answer['error']}"}
                        continue
                    systems[name] = {
                        "errors": errors(query, exact, answer["values"]),
                        "seconds_per_release": (time.perf_counter() - start) / releases,
                        "info": {k: v for k, v in (answer.get("info") or {}).items() if k != "plan_seconds"},
                    }
                for name, reason in blocked.items():
                    systems.setdefault(name, {"error": f"blocked: {reason}"})
                results["queries"][query.id] = {"label": query.label, "exact_groups": len(exact), "systems": systems}
                log(f"  {query.id}: " + ", ".join(_summary(name, s) for name, s in systems.items()))
    finally:
        for process in processes.values():
            process.close()
    results["envs"] = envs
    results["verdicts"] = verdicts(results)
    return results
