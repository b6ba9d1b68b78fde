"""Throughput of the whole service over HTTP: the demo's grouped query, N concurrent clients,
against a real `sandbox serve` process on loopback.

Each request is a distinct query (a varying WHERE constant), so none is answered from the
reuse cache; a second phase repeats one query to show the cost of a reused release.

    python -m benchmarks.service_throughput --rows 1000000 --clients 8 --requests 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUERY = ("SELECT district, COUNT(*), SUM(monthly_income), AVG(monthly_income) FROM residents "
         "WHERE age >= {k} GROUP BY district")


def _prepare(data_dir: Path, rows: int) -> dict[str, str]:
    """Demo data at `rows` residents, registered, plus a developer with a large agreement."""
    from sandbox import accounts, agreements
    from sandbox.catalog import Catalog
    from sandbox.demo import build_demo
    from sandbox.policy import load_policy
    from sandbox.store import Store

    if not (data_dir / "demo" / "residents.parquet").exists():
        build_demo(data_dir / "demo", scale=rows)
    catalog = Catalog(data_dir)
    catalog.register(load_policy(REPO / "policies" / "residents.yaml"), REPO / "policies" / "residents.yaml")
    db = data_dir / "sandbox.db"
    db.unlink(missing_ok=True)
    store = Store(db)
    with store.transaction() as conn:
        operator, _ = accounts.create_user(conn, "bench operator", "operator")
        _, developer, token = accounts.create_licence(
            conn, operator, name="bench", organisation="bench", licence_number="BENCH-1",
            valid_from="2020-01-01", valid_to="2100-01-01")
        agreement = agreements.request(
            conn, developer, purpose="benchmark", legal_basis="benchmark", datasets={"residents": None},
            valid_from="2020-01-01", valid_to="2100-01-01", epsilon=100.0, delta=0.0,
            known={"residents": set(catalog.get("residents").policy.queryable())})
        agreements.approve(conn, operator, agreement["id"])
    store.close()
    return {"token": token, "agreement": agreement["id"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(client: httpx.Client, body: dict) -> float:
    start = time.perf_counter()
    response = client.post("/jobs", json=body)
    elapsed = time.perf_counter() - start
    if response.status_code != 201 or response.json()["status"] != "released":
        raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:300]}")
    return elapsed


def _phase(url: str, token: str, bodies: list[dict], clients: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client, ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        latencies = list(pool.map(lambda b: _timed(client, b), bodies))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(bodies), "clients": clients, "wall_s": wall, "qps": len(bodies) / wall,
            "median_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
            "min_ms": latencies[0] * 1000, "max_ms": latencies[-1] * 1000}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    data_dir = HERE / "data" / f"service-{args.rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"preparing {args.rows:,} residents rows in {data_dir}", flush=True)
    creds = _prepare(data_dir, args.rows)
    port = _free_port()
    (HERE / "data" / "no-policies").mkdir(exist_ok=True)
    env = os.environ | {"SANDBOX_WORKERS": str(args.workers)}
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "serve", "--data-dir", str(data_dir), "--port", str(port),
         "--policies", str(HERE / "data" / "no-policies")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = {"epsilon": 0.01, "agreement_id": creds["agreement"], "wait": 60}
        _phase(url, creds["token"], [body | {"sql": QUERY.format(k=100 + i)} for i in range(4)], 2)  # warm-up
        fresh = _phase(url, creds["token"], [body | {"sql": QUERY.format(k=i % 100)} for i in range(args.requests)],
                       args.clients)
        reused = _phase(url, creds["token"], [body | {"sql": QUERY.format(k=0)}] * args.requests, args.clients)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    result = {"rows": args.rows, "workers": args.workers, "query": QUERY, "fresh": fresh, "reused": reused}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_throughput.json").write_text(json.dumps(result, indent=2))
    lines = ["| phase | requests | clients | median ms | p95 ms | queries/s |", "|---|---|---|---|---|---|"]
    for name in ("fresh", "reused"):
        r = result[name]
        lines.append(f"| {name} | {r['requests']} | {r['clients']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | "
                     f"{r['qps']:.1f} |")
    (args.out / "service_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
