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
    from sandbox.catalog import Catalog
    from sandbox.demo import build_demo
    from sandbox.policy import load_policy

    if not (data_dir / "demo" / "residents.parquet").exists():
        build_demo(data_dir / "demo", scale=rows)
    catalog = Catalog(data_dir)
    catalog.register(load_policy(REPO / "policies" / "residents.yaml"), REPO / "policies" / "residents.yaml")
    creds = grant(data_dir, ["residents"])
    return {"token": creds["token"], "agreement": creds["agreements"][0]}


def grant(
    data_dir: Path, datasets: list[str], *, agreements: int = 1, epsilon: float = 100.0, delta: float = 0.0
) -> dict:
    """A fresh store under `data_dir` with one developer holding `agreements` approved agreements
    over the registered `datasets` (several, so a benchmark can repeat a query without being
    answered from the reuse cache: a stored release is reused only under the same agreement)."""
    from sandbox import accounts
    from sandbox import agreements as agreements_
    from sandbox.catalog import Catalog
    from sandbox.store import Store

    catalog = Catalog(data_dir)
    db = data_dir / "sandbox.db"
    db.unlink(missing_ok=True)
    store = Store(db)
    ids = []
    with store.transaction() as conn:
        operator, _ = accounts.create_user(conn, "bench operator", "operator")
        _, developer, token = accounts.create_licence(
            conn, operator, name="bench", organisation="bench", licence_number="BENCH-1",
            valid_from="2020-01-01", valid_to="2100-01-01")
        for _ in range(agreements):
            agreement = agreements_.request(
                conn, developer, purpose="benchmark", legal_basis="benchmark",
                datasets={name: None for name in datasets}, valid_from="2020-01-01", valid_to="2100-01-01",
                epsilon=epsilon, delta=delta,
                known={name: set(catalog.get(name).policy.queryable()) for name in datasets})
            agreements_.approve(conn, operator, agreement["id"])
            ids.append(agreement["id"])
    store.close()
    return {"token": token, "agreements": ids}


def start_server(
    data_dir: Path, policies: Path, workers: int, *, memory_mb: int | None = None
) -> tuple[subprocess.Popen, str]:
    """A real `sandbox serve` on a free loopback port (its own session, so it can be stopped
    with its workers); returns once /health answers. `memory_mb`: the job memory limit."""
    port = _free_port()
    env = os.environ | {"SANDBOX_WORKERS": str(workers)}
    if memory_mb is not None:
        env["SANDBOX_QUERY_MEMORY_MB"] = str(memory_mb)
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "serve", "--data-dir", str(data_dir), "--port", str(port),
         "--policies", str(policies)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600  # registration re-checks the data's fingerprint first
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"sandbox serve exited with code {server.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError("sandbox serve did not answer /health within 600 s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


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
    (HERE / "data" / "no-policies").mkdir(exist_ok=True)
    server, url = start_server(data_dir, HERE / "data" / "no-policies", args.workers)
    try:
        body = {"epsilon": 0.01, "agreement_id": creds["agreement"], "wait": 60}
        _phase(url, creds["token"], [body | {"sql": QUERY.format(k=100 + i)} for i in range(4)], 2)  # warm-up
        fresh = _phase(url, creds["token"], [body | {"sql": QUERY.format(k=i % 100)} for i in range(args.requests)],
                       args.clients)
        reused = _phase(url, creds["token"], [body | {"sql": QUERY.format(k=0)}] * args.requests, args.clients)
    finally:
        stop_server(server)
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
