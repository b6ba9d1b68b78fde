"""Side by side with the peers: speed and memory of one query suite on the same Parquet files.

For each size (1M and 10M rows by default, 100M with `--with-100m`), after writing the data
(`benchmarks/peer_data.py`, in a child process) and registering it in our catalog, these run
interleaved, query by query, the order rotating every round:

| system | what runs |
|---|---|
| `duckdb_exact` | the query, unbounded and exact, on a warm DuckDB connection reading the Parquet |
| `duckdb_bounded` | our generated bounded SQL (`plan.aggregate_sql` + histogram SQL) on a warm connection |
| `engine` | `sandbox.engine.Engine.run` in-process (compile, worker, locked DuckDB, OpenDP noise) |
| `engine_fresh` | the same with the plan cache off (`compiler/cache.py`): compiled anew every time |
| `service` | `POST /jobs` to a real `sandbox serve` subprocess (auth, agreement, budget, audit) |
| `smartnoise` | SmartNoise SQL's `PrivateReader.execute` (pandas reader), in its own venv |
| `opendp` | OpenDP's Polars context (`Context.compositor`, `dp.polars`), in its own venv |

Every system answers the same query again and again, as a dashboard would; ours keeps the plan
(the plan cache) and runs the output step in Python from a query's second release
(`engine/output_evaluator.py`). `engine_fresh` shows what compiling costs on top, as for a query
never asked before (its output step still in Python: a worker remembers the SQL it released).

The peers run as long-lived subprocesses (`benchmarks/peers/*_job.py`, one per peer and size)
that time each release themselves; their peak RSS is their own VmHWM. Each timed call starts
after SETTLE_SECONDS of idle: no system is timed while the previous one's process is still busy
(freeing a million-row frame, threads winding down). The price is cold caches for every system,
as when a job reaches an idle service: our fast releases pay the most (the filtered COUNT at 1M
rows: 7.0 ms settled, 6.3 ms rotating without the pause, 3.2 ms back to back). Peers take no part in
warm-up rounds (their first call loads the data, which is reported apart). Results go to
`benchmarks/results/peers.json`; `benchmarks/peers_report.py` renders the Markdown and the plot.

Our engine and service get the default job memory limit (1,024 MB) below 10M rows and 4,096 MB
from 10M rows (`engine_memory_mb`): there the compiler's worst-case estimate for a COUNT by 200
private keys (groups bounded by the public size class, compiler/work.py) exceeds the default, and
the query would be refused before reading data. The limit used is recorded with each size.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

from benchmarks import peer_envs
from benchmarks.engine_vs_duckdb import THREADS, parse_size, peak_rss_mib, run_meta
from benchmarks.suite import DELTA, EPSILON, QUERIES, Query
from sandbox.compiler.cache import PLANS

__all__ = ["PeerProcess", "SYSTEMS", "main"]

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data" / "peers"
RESULTS_DIR = HERE / "results"
POLICIES = HERE / "policies"
WORKERS = 2
SETTLE_SECONDS = 0.2  # idle time before every timed call (module docstring)
SYSTEMS = ("duckdb_exact", "duckdb_bounded", "engine", "engine_fresh", "service", "smartnoise", "opendp")


def log(message: str) -> None:
    print(message, flush=True)


class PeerProcess:
    """A peer script in its own venv, answering one JSON job per line (see peers/common.py)."""

    def __init__(self, peer: peer_envs.Peer, python: str, stderr: Path) -> None:
        self.peer = peer
        self._stderr = stderr.open("a")
        self.process = subprocess.Popen(
            [python, str(peer.script_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self.peak_rss_mib: float | None = None

    def ask(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.peer.label} exited (code {self.process.wait()}); see {self._stderr.name}")
        answer = json.loads(line)
        self.peak_rss_mib = answer.get("peak_rss_mib") or self.peak_rss_mib
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


def prepare(rows: int, data_dir: Path) -> dict[str, Any]:
    """Write and register the data in a child process (its memory is not the benchmark's)."""
    directory = data_dir / str(rows)
    log(f"  data: {rows:,} rows in {directory} (written and registered once) ...")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.peer_data", "--rows", str(rows), "--out", str(directory)],
        cwd=HERE.parent,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tree_peaks(pid: int) -> dict[str, Any]:
    """VmHWM of a process and of its children (the service and its engine workers)."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return {"process": peak_rss_mib(pid), "children": [peak_rss_mib(c) for c in children]}


def bench_size(
    rows: int,
    label: str,
    runs: int,
    warmup: int,
    data_dir: Path,
    peers: dict[str, PeerProcess],
    blocked: dict[str, str],
    service: bool,
) -> dict[str, Any]:
    from benchmarks.service_throughput import grant, start_server, stop_server
    from sandbox.catalog import Catalog
    from sandbox.engine import Engine, WorkerLimits

    setup = prepare(rows, data_dir)
    directory = (data_dir / str(rows)).resolve()
    catalog = Catalog(directory)
    paths = {table: str(directory / f"{table}.parquet") for table in ("people", "visits")}
    server = url = creds = None
    if service:
        creds = grant(directory, ["people", "visits"], agreements=runs + warmup, epsilon=100.0, delta=1e-4)
        log("  starting sandbox serve ...")
        server, url = start_server(directory, POLICIES, WORKERS, memory_mb=engine_memory_mb(rows))
    results = []
    try:
        client = httpx.Client(base_url=url or "http://127.0.0.1:9", timeout=600)
        memory_mb = engine_memory_mb(rows)
        limits = WorkerLimits(memory_mb=memory_mb, address_space_mb=max(2048, 2 * memory_mb))
        with Engine(catalog, workers=WORKERS, limits=limits) as engine, client as http:
            for query in QUERIES:
                log(f"  {label} {query.id}: {warmup} warm-up + {runs} runs ...")
                results.append(
                    bench_query(query, engine, http, creds, paths, peers, blocked, runs, warmup)
                )
                summary = ", ".join(
                    f"{name} {stats['median_s'] * 1e3:.0f} ms"
                    for name, stats in results[-1]["stats"].items()
                )
                log(f"    {summary}")
            memory = {
                "duckdb_exact": peak_rss_mib(),  # the benchmark process: both warm DuckDB connections
                "engine_workers": [peak_rss_mib(pid) for pid in engine.pool.pids()],
            }
        if server is not None:
            memory["service"] = _tree_peaks(server.pid)
    finally:
        if server is not None:
            stop_server(server)
    for name, peer in peers.items():
        memory[name] = peer.peak_rss_mib
    return {
        "rows": rows, "size": label, "setup": setup, "memory_mib": memory, "results": results, "blocked": blocked,
        "engine_memory_limit_mb": engine_memory_mb(rows),
    }  # fmt: skip


def engine_memory_mb(rows: int) -> int:
    """The job memory limit our engine and service get at `rows` (see the module docstring)."""
    return 1024 if rows < 10_000_000 else 4096


def bench_query(
    query: Query,
    engine: Any,
    http: httpx.Client,
    creds: dict | None,
    paths: dict[str, str],
    peers: dict[str, PeerProcess],
    blocked: dict[str, str],
    runs: int,
    warmup: int,
) -> dict[str, Any]:
    sql = query.sql.format(table=query.table)
    exact_sql = query.sql.format(table=f"read_parquet('{paths[query.table]}')")
    plan = engine.explain(sql, epsilon=EPSILON)
    exact = duckdb.connect(config={"threads": str(THREADS)})
    bounded = duckdb.connect(config={"threads": str(THREADS)})
    for alias, path in plan.attach.items():
        bounded.execute(f"ATTACH '{path}' AS \"{alias}\" (READ_ONLY)")
    bounded_sql = [plan.aggregate_sql] if plan.needs_aggregate else []  # what the worker runs
    bounded_sql += plan.histogram_sql.values()
    errors: dict[str, str] = {}
    info: dict[str, Any] = {}
    times: dict[str, list[float]] = {}
    round_index = {"n": 0}

    def run_bounded() -> None:
        for text in bounded_sql:
            bounded.execute(text).fetchall()

    def run_fresh() -> None:
        with PLANS.disabled():
            engine.run(sql, epsilon=EPSILON)

    def run_service() -> None:
        assert creds is not None
        body = {"sql": sql, "epsilon": EPSILON, "agreement_id": creds["agreements"][round_index["n"]], "wait": 600}
        response = http.post("/jobs", json=body, headers={"Authorization": f"Bearer {creds['token']}"})
        if response.status_code != 201 or response.json()["status"] != "released":
            raise RuntimeError(f"service answered {response.status_code}: {response.text[:300]}")

    def peer_runner(name: str) -> Callable[[], float | None]:
        job = {"query": query.job(), "data": paths, "epsilon": EPSILON, "delta": DELTA, "reps": 1}

        def run() -> float | None:
            answer = peers[name].ask(job)
            if not answer["ok"]:
                errors[name] = ("unsupported: " if answer.get("unsupported") else "failed: ") + answer["error"]
                return None
            info[name] = answer.get("info")
            return answer["seconds"][0]

        return run

    contenders: dict[str, Callable[[], Any]] = {
        "duckdb_exact": lambda: exact.execute(exact_sql).fetchall(),
        "duckdb_bounded": run_bounded,
        "engine": lambda: engine.run(sql, epsilon=EPSILON),
        "engine_fresh": run_fresh,
    }
    if creds is not None:
        contenders["service"] = run_service
    for name in peers:
        contenders[name] = peer_runner(name)
    names = list(contenders)
    try:
        for round_ in range(warmup + runs):
            round_index["n"] = round_
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                if name in errors or (name in peers and round_ < warmup):
                    continue
                time.sleep(SETTLE_SECONDS)
                start = time.perf_counter()
                try:
                    inner = contenders[name]()
                except Exception as exc:  # recorded, the others go on
                    errors[name] = f"failed: {type(exc).__name__}: {exc}"
                    continue
                elapsed = time.perf_counter() - start
                if name in errors:  # a peer answered that it cannot run this query
                    continue
                if round_ >= warmup:
                    times.setdefault(name, []).append(inner if name in peers else elapsed)
    finally:
        exact.close()
        bounded.close()
    for name, reason in blocked.items():
        errors.setdefault(name, f"blocked: {reason}")
    stats = {
        name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "n": len(v)}
        for name, v in times.items()
        if v
    }
    return {
        "query": query.id,
        "table": query.table,
        "label": query.label,
        "sql": sql,
        "smartnoise_sql": query.smartnoise,
        "bounded_sql": bounded_sql,
        "seconds": times,
        "stats": stats,
        "errors": errors,
        "peer_info": info,
    }


def start_peers(rows: int, log_dir: Path, peers_max_rows: int, no_peers: bool) -> tuple[dict, dict, dict]:
    """Ensure every peer's venv; start those that installed. Returns (processes, blocked, envs).
    The peers' stderr goes to `<log_dir>/<peer>.stderr.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, PeerProcess] = {}
    blocked: dict[str, str] = {}
    envs: dict[str, Any] = {}
    if no_peers:
        return processes, {p.name: "skipped (--no-peers)" for p in peer_envs.PEERS}, envs
    for peer in peer_envs.PEERS:
        status = peer_envs.ensure(peer, log=log)
        envs[peer.name] = status
        if not status["ok"]:
            blocked[peer.name] = "pip install failed: " + status["error"].strip().splitlines()[-1]
        elif rows > peers_max_rows:
            blocked[peer.name] = f"skipped above {peers_max_rows:,} rows (--peers-max-rows)"
        else:
            processes[peer.name] = PeerProcess(peer, status["python"], log_dir / f"{peer.name}.stderr.log")
    return processes, blocked, envs


def main(
    sizes: list[str],
    *,
    runs: int = 5,
    warmup: int = 1,
    data_dir: Path = DATA_DIR,
    out_dir: Path = RESULTS_DIR,
    no_peers: bool = False,
    service: bool = True,
    peers_max_rows: int = 10_000_000,
    accuracy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the speed suite at each size; `accuracy` (from benchmarks.accuracy) is stored along."""
    from benchmarks import peers_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "meta": run_meta(runs, warmup)
        | {
            "epsilon": EPSILON,
            "settle_seconds": SETTLE_SECONDS,
            "delta_private_keys": DELTA,
            "engine_memory_limit_mb": _memory_limit_mb(),
            "load_average_before": load_before,
        },
        "envs": {},
        "sizes": [],
    }
    if accuracy is not None:
        report["accuracy"] = accuracy
    for label in sizes:
        rows = parse_size(label)
        log(f"[{label}] {rows:,} rows")
        processes, blocked, envs = start_peers(rows, Path(data_dir), peers_max_rows, no_peers)
        report["envs"] |= envs
        try:
            report["sizes"].append(
                bench_size(rows, label, runs, warmup, Path(data_dir), processes, blocked, service)
            )
        finally:
            for process in processes.values():
                process.close()
        # written after every size, so a long run's finished sizes are kept if it is stopped
        report["meta"]["load_average_after"] = os.getloadavg()
        (out_dir / "peers.json").write_text(json.dumps(report, indent=2, default=str))
        peers_report.render(report, out_dir)
        log(f"wrote peers.json, peers.md and peers_time.png to {out_dir} ({label} done)")
    return report


def store_accuracy(accuracy: dict[str, Any] | None, out_dir: Path = RESULTS_DIR) -> None:
    """Put a separately run accuracy study into the existing peers.json (its speed results are
    kept) and re-render the report."""
    from benchmarks import peers_report

    path = Path(out_dir) / "peers.json"
    if accuracy is None or not path.exists():
        raise SystemExit(f"--accuracy-only needs an accuracy study and an existing {path} (run the peers suite first)")
    report = json.loads(path.read_text())
    report["accuracy"] = accuracy
    path.write_text(json.dumps(report, indent=2, default=str))
    peers_report.render(report, Path(out_dir))
    log(f"stored the accuracy study in {path}; re-rendered peers.md")


def _memory_limit_mb() -> int:
    from sandbox.engine import WorkerLimits

    return WorkerLimits().memory_mb
