"""The worker pool: limits, failures and concurrency, seen from the calling process."""

from __future__ import annotations

import logging
import os
import resource
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from sandbox.engine.worker import WorkerLimits, WorkerPool
from sandbox.errors import (
    InvalidParameter,
    QueryFailed,
    QueryTimeout,
    ResourceExhausted,
)
from tests.engine import tasks

WALL_SECONDS = 2.0


@pytest.fixture(scope="module")
def attach(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    path = tmp_path_factory.mktemp("data") / "residents.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE data AS SELECT range AS person_id FROM range(100)")
    return {"residents": path}


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    with WorkerPool(2, WorkerLimits(wall_seconds=WALL_SECONDS)) as pool:
        yield pool


def _answers(pool: WorkerPool, attach: dict[str, Path]) -> bool:
    return pool.run(tasks.run_raw_sql, "SELECT count(*) FROM residents.data", attach) == [(100,)]


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_workers_are_started_eagerly(pool: WorkerPool) -> None:
    assert len(pool.pids()) == 2
    assert os.getpid() not in pool.pids()


def test_a_job_reuses_a_warm_worker(pool: WorkerPool, attach: dict[str, Path]) -> None:
    """A trivial task on a warm worker (pipe, fresh database, attach and lock, reply) costs a
    small fraction of starting a worker, measured side by side: no process is spawned per job."""
    before = pool.pids()
    times = []
    for _ in range(30):
        time.sleep(0.05)  # the worker prepares the next job's database between jobs
        start = time.perf_counter()
        assert pool.run(tasks.echo, 42, attach) == 42
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    with WorkerPool(1, WorkerLimits(wall_seconds=WALL_SECONDS)) as fresh:
        spawn = time.perf_counter() - start
        assert fresh.run(tasks.echo, 1, attach) == 1
    job = statistics.median(times)
    print(f"per-job overhead: median {job * 1000:.1f} ms; starting a worker: {spawn * 1000:.0f} ms")
    assert pool.pids() == before
    assert job < spawn / 5  # ~3 ms against ~500 ms on a quiet machine


def test_wall_clock_limit_kills_the_worker(pool: WorkerPool, attach: dict[str, Path]) -> None:
    before = pool.pids()
    start = time.monotonic()
    with pytest.raises(QueryTimeout) as timeout:
        pool.run(tasks.run_raw_sql, "SELECT count(*) FROM range(1000000000000)", attach)
    assert timeout.value.data_touched
    assert time.monotonic() - start < WALL_SECONDS + 2
    assert _answers(pool, attach)
    assert len(set(before) - set(pool.pids())) == 1  # the busy one was killed and replaced
    assert len(pool.pids()) == 2


def test_huge_allocation_is_resource_exhausted(pool: WorkerPool, attach: dict[str, Path]) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ResourceExhausted) as exhausted:
        pool.run(tasks.run_raw_sql, "SELECT length(repeat('x', 2000000000))", attach)
    assert exhausted.value.data_touched
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) >> 10
    assert rss_growth_mb < 200  # the 2 GB string never came near this process
    assert _answers(pool, attach)


def test_worker_killed_mid_job(pool: WorkerPool, attach: dict[str, Path], tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    outcome: list[BaseException] = []

    def slow_job() -> None:
        try:
            pool.run(tasks.announce_then_sleep, (str(pid_file), 30.0), attach)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=slow_job)
    thread.start()
    _wait_for(pid_file.exists)
    _wait_for(lambda: pid_file.read_text() != "")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    thread.join(10)
    assert not thread.is_alive()
    [error] = outcome
    assert type(error) is QueryFailed and error.data_touched
    assert _answers(pool, attach)
    assert len(pool.pids()) == 2


def test_worker_that_died_while_idle_is_replaced(pool: WorkerPool, attach: dict[str, Path]) -> None:
    for pid in pool.pids():
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not pool.pids())
    assert _answers(pool, attach)
    assert _answers(pool, attach)


def test_task_error_is_generic(
    pool: WorkerPool, attach: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "person-4711-has-hiv"
    with caplog.at_level(logging.WARNING, logger="sandbox.engine"):
        with pytest.raises(QueryFailed) as failed:
            pool.run(tasks.fail_with_secret, secret, attach)
    error = failed.value
    assert type(error) is QueryFailed and error.data_touched
    assert secret not in str(error) and secret not in repr(error.to_dict())
    assert error.__cause__ is None and error.__context__ is None
    assert "ConversionException" in caplog.text  # the type is logged ...
    assert secret not in caplog.text  # ... never the message


def test_deliberate_sandbox_error_passes_through(pool: WorkerPool, attach: dict[str, Path]) -> None:
    with pytest.raises(InvalidParameter) as invalid:
        pool.run(tasks.refuse_deliberately, None, attach)
    assert invalid.value.fields == {"parameter": "epsilon"}
    assert "Pass epsilon > 0" in str(invalid.value)


def test_unpicklable_result_fails_generically(pool: WorkerPool, attach: dict[str, Path]) -> None:
    with pytest.raises(QueryFailed) as failed:
        pool.run(tasks.unpicklable_result, None, attach)
    assert failed.value.data_touched
    assert _answers(pool, attach)


@pytest.mark.parametrize(
    "attach_bad",
    [{"residents": "/nonexistent/residents.duckdb"}, {"not an alias": "/x.duckdb"}],
    ids=["missing file", "bad alias"],
)
def test_setup_failure_touches_no_data(pool: WorkerPool, attach_bad: dict[str, str]) -> None:
    with pytest.raises(QueryFailed) as failed:
        pool.run(tasks.echo, None, attach_bad)
    assert not failed.value.data_touched


def test_each_job_gets_a_fresh_database(pool: WorkerPool, attach: dict[str, Path]) -> None:
    pool.run(tasks.run_raw_sql, "CREATE TABLE leftover AS SELECT 1", attach)
    for _ in range(4):  # whichever worker answers
        with pytest.raises(QueryFailed):
            pool.run(tasks.run_raw_sql, "SELECT * FROM leftover", attach)


def test_concurrent_runs(pool: WorkerPool, attach: dict[str, Path]) -> None:
    with ThreadPoolExecutor(8) as executor:
        results = list(executor.map(lambda i: pool.run(tasks.echo, i, attach), range(32)))
        pids = set(executor.map(lambda _: pool.run(tasks.worker_pid, None, attach), range(16)))
    assert results == list(range(32))
    assert pids <= set(pool.pids()) and len(pids) <= 2


def test_jobs_one_at_a_time_go_to_the_worker_that_answered_last(attach: dict[str, Path]) -> None:
    """Its caches and kept connections are warm; taking turns left every job a cold worker."""
    with WorkerPool(2, WorkerLimits(wall_seconds=WALL_SECONDS)) as pool:
        answered = [pool.run(tasks.worker_pid, None, attach) for _ in range(5)]
        assert len(set(answered)) == 1, answered


def test_a_replacement_still_starting_is_taken_after_a_ready_worker(attach: dict[str, Path]) -> None:
    """After a kill, the next job goes to the other, ready worker instead of waiting for the
    replacement's start-up (about a second: it imports DuckDB)."""
    with WorkerPool(2, WorkerLimits(wall_seconds=WALL_SECONDS)) as pool:
        before = set(pool.pids())
        with pytest.raises(QueryTimeout):
            pool.run(tasks.run_raw_sql, "SELECT count(*) FROM range(1000000000000)", attach)
        (ready,) = before & set(pool.pids())
        assert pool.run(tasks.worker_pid, None, attach) == ready


def test_worker_with_a_grown_address_space_retires(attach: dict[str, Path]) -> None:
    """A worker whose heap stays large after a job is replaced, so every job gets headroom."""
    with WorkerPool(1, WorkerLimits(address_space_mb=2048)) as pool:
        first = pool.run(tasks.hoard, 1200, attach)  # past half of the job's headroom
        assert first not in pool.pids()
        assert pool.run(tasks.worker_pid, None, attach) != first


def test_closed_pool_refuses_work(attach: dict[str, Path]) -> None:
    pool = WorkerPool(1)
    pids = pool.pids()
    pool.close()
    assert not pool.pids()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(tasks.echo, None, attach)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
