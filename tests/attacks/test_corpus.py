"""The attack corpus (`corpus.yaml`), run against a real sandbox server over HTTP.

Every case is an attack by a licensed developer (mallory) with valid credentials and arbitrary
SQL, or by someone without them, and states its outcome: a clear refusal (HTTP status, error code
and, for SQL, the compiler rule that refused it), a correct DP release with its charge, or a
generic failure that keeps its charge. After *every* case the server still answers `GET /health`
and the managed data files are byte-identical to what registration wrote.

A case is one request (`sql`, `generate` or `request`) or a sequence (`steps`) with checks across
the steps (`differencing`, `same_outcome`). What each check means is in `check_outcome`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from sandbox.errors import QueryFailed
from tests.attacks.conftest import World

CORPUS_FILE = Path(__file__).with_name("corpus.yaml")
CORPUS: list[dict[str, Any]] = yaml.safe_load(CORPUS_FILE.read_text())

OUTCOMES = ("refused", "released", "failed", "refunded", "reused_from", "same_job_as", "ok")
REQUEST_KEYS = ("sql", "generate", "request", "steps")
GENERIC_FAILURE = QueryFailed(data_touched=True).message
DEFAULT_EPSILON = 0.1

# SQL and bodies too large or too regular to write out in YAML.
GENERATORS: dict[str, Callable[[], str]] = {
    "deep_parentheses": lambda: "SELECT COUNT(*) FROM residents WHERE " + "(" * 5000 + "age > 1" + ")" * 5000,
    "deep_not": lambda: "SELECT COUNT(*) FROM residents WHERE " + "NOT " * 3000 + "age > 1",
    "long_plus_chain": lambda: "SELECT COUNT(*) FROM residents WHERE age = 0" + " + 0" * 1500,
    "long_and_chain": lambda: "SELECT COUNT(*) FROM residents WHERE " + " AND ".join(["age > 1"] * 600),
    "huge_in_list": lambda: "SELECT COUNT(*) FROM residents WHERE age IN (" + ", ".join(map(str, range(3000))) + ")",
    "many_aggregates": lambda: "SELECT " + ", ".join(["COUNT(*)"] * 200) + " FROM residents",
    "just_too_long": lambda: "SELECT COUNT(*) FROM residents WHERE district = '" + "x" * 20_000 + "'",
    "megabyte_sql": lambda: "SELECT COUNT(*) FROM residents WHERE district = '" + "x" * 1_000_000 + "'",
    "megabyte_comment": lambda: "SELECT COUNT(*) FROM residents /*" + " " * 1_000_000 + "*/",
}
BODIES: dict[str, Callable[[World], bytes]] = {
    "twenty_megabytes": lambda w: json.dumps({"sql": "x" * 20_000_000, "epsilon": 0.1,
                                              "agreement_id": w.ids["agreement"]}).encode(),
    "deep_json": lambda w: b'{"sql":' * 50_000 + b"1" + b"}" * 50_000,
    "huge_integer": lambda w: b'{"sql": "SELECT COUNT(*) FROM residents", "epsilon": 1' + b"0" * 5000
    + b', "agreement_id": "' + w.ids["agreement"].encode() + b'"}',
}
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _cases() -> list[Any]:
    params = []
    for case in CORPUS:
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def _fill(value: Any, names: dict[str, str]) -> Any:
    """${name} -> the world's id or token of that name, anywhere in a case."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


# -- the corpus itself ----------------------------------------------------------------------


def test_corpus_is_well_formed() -> None:
    ids = [case["id"] for case in CORPUS]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CORPUS) >= 60
    for case in CORPUS:
        assert case.get("attack"), f"{case['id']}: say which attack it is"
        kinds = [k for k in REQUEST_KEYS if k in case]
        assert len(kinds) == 1, f"{case['id']}: exactly one of {REQUEST_KEYS}"
        steps = case.get("steps", [case])
        for step in steps:
            outcomes = [k for k in OUTCOMES if k in step]
            assert len(outcomes) == 1 or (case.get("same_outcome") and not outcomes), (
                f"{case['id']}: each request states one outcome of {OUTCOMES}")
            assert step.get("generate", "deep_parentheses") in GENERATORS
            refused = step.get("refused")
            if refused and "sql" in step and refused["code"] == "sql_rejected":
                assert refused.get("rule"), f"{case['id']}: an SQL refusal names the rule"


# -- running one case -------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases())
def test_attack(world: World, case: dict[str, Any]) -> None:
    case = _fill(case, world.names())
    main_before = _spent(world, "agreement")
    expected_main = 0.0
    results: list[dict[str, Any]] = []
    for step in case.get("steps", [case]):
        result = run_step(world, step, results)
        results.append(result)
        if step.get("agreement", "agreement") == "agreement":
            expected_main += result["charged"]
    if "differencing" in case:
        check_differencing(world, case["differencing"], case["steps"], results)
    if case.get("same_outcome"):
        outcomes = {(r["job"] or {}).get("status", r["response"].status_code) for r in results}
        assert len(outcomes) == 1, (
            "a data-dependent outcome is an exact, noiseless bit: "
            + "; ".join(f"{r['job']['status'] if r['job'] else r['response'].status_code}" for r in results))
    # Nothing costs more (or less) than its outcome says, and the sandbox is unharmed.
    assert _spent(world, "agreement") == pytest.approx(main_before + expected_main, abs=1e-9)
    assert world.request(None, "GET", "/health").status_code == 200
    assert world.data.current_hashes() == world.data.hashes, "managed data files changed"


def run_step(world: World, step: dict[str, Any], earlier: list[dict[str, Any]]) -> dict[str, Any]:
    agreement = step.get("agreement", "agreement")
    before = _spent(world, agreement) if agreement in world.ids else None
    response = send(world, step)
    after = _spent(world, agreement) if agreement in world.ids else None
    job = _job(response)
    charged = (after - before) if before is not None else 0.0
    check_outcome(world, step, response, job, charged, earlier)
    return {"response": response, "job": job, "charged": charged}


def send(world: World, step: dict[str, Any]) -> httpx.Response:
    if "request" in step:
        request = step["request"]
        headers = world.headers(request.get("as", "mallory"), **request.get("headers", {}))
        content = None
        if "body" in request:
            content = request["body"].encode()
        elif "body_hex" in request:
            content = bytes.fromhex(request["body_hex"])
        elif "body_generate" in request:
            content = BODIES[request["body_generate"]](world)
        if content is not None:
            headers.setdefault("Content-Type", "application/json")
        extensions = {"target": request["raw_path"].encode()} if "raw_path" in request else None
        built = world.http.build_request(request.get("method", "GET"), request.get("path", "/"), headers=headers,
                                         json=request.get("json"), content=content, params=request.get("params"),
                                         extensions=extensions)
        return world.http.send(built)
    sql = GENERATORS[step["generate"]]() if "generate" in step else step["sql"]
    body = {"sql": sql, "epsilon": step.get("epsilon", DEFAULT_EPSILON), "agreement_id": world.ids[
        step.get("agreement", "agreement")], "wait": 60}
    if "delta" in step:
        body["delta"] = step["delta"]
    return world.request(step.get("as", "mallory"), "POST", "/jobs", json=body, headers=step.get("headers"))


def check_outcome(world: World, step: dict[str, Any], response: httpx.Response, job: dict[str, Any] | None,
                  charged: float, earlier: list[dict[str, Any]]) -> None:
    """refused   the request fails with {status, code[, rule]} and costs nothing
    released  a fresh DP release (not reused), charged its epsilon; every cell's 95% half-width
              is the one `POST /explain` declares for its column; optional: `charge`,
              `absent_keys`/`present_keys` (private group keys), `sensitivity` {kind: n} (what
              explain declares for the noisy statistics of that kind), `exact` (an exact query over
              the managed Parquet: some released cell differs from it, i.e. noise is there),
              `one_statement` (the SQL the engine ran is one statement, whatever the comments
              held), `compiled_includes` (strings in the SQL the engine ran)
    failed    a data-dependent failure: generic message, data_touched, the charge is kept
    refunded  a data-independent failure before any data was read: nothing is charged
    reused_from: i   the stored release of step i, same answer, free
    same_job_as: i   an idempotent replay of step i's job, free
    ok        a plain HTTP answer {status[, absent: [...]]} (strings that must not appear)"""
    text = response.text[:2000]
    if "refused" in step:
        expected = step["refused"]
        assert response.status_code == expected["status"], text
        error = response.json()["error"]
        assert error["code"] == expected["code"], text
        if "rule" in expected:
            assert error.get("rule") == expected["rule"], text
        assert error.get("message"), text
        assert charged == 0, "a refusal must cost nothing"
    elif "ok" in step:
        expected = step["ok"]
        assert response.status_code == expected["status"], text
        for needle in expected.get("absent", []):
            assert needle not in response.text, f"{needle!r} must not be in the answer"
        assert charged == 0
    elif "released" in step:
        check_release(world, step, response, job, charged)
    elif "failed" in step:
        assert response.status_code == 201 and job is not None, text
        assert job["status"] == "failed" and job["result"] is None, text
        assert job["error"]["code"] == "query_failed" and job["error"]["data_touched"] is True, text
        assert job["error"]["message"] == GENERIC_FAILURE, "a failure after reading data says nothing about it"
        assert job["charge_epsilon"] == pytest.approx(step.get("epsilon", DEFAULT_EPSILON))
        assert charged == pytest.approx(job["charge_epsilon"]), "a data-dependent failure keeps its charge"
    elif "refunded" in step:
        assert response.status_code == 201 and job is not None, text
        assert job["status"] == "failed" and job["result"] is None, text
        assert job["error"]["data_touched"] is False, text
        assert job["charge_epsilon"] == 0 and charged == 0, text
    elif "reused_from" in step:
        source = earlier[step["reused_from"]]["job"]
        assert response.status_code == 201 and job is not None, text
        assert job["status"] == "released" and job["reused"] and job["reused_from"] == source["id"], text
        assert job["result"] == source["result"], "the same question gets the same answer"
        assert job["charge_epsilon"] == 0 and charged == 0, "a reused release is free"
    elif "same_job_as" in step:
        source = earlier[step["same_job_as"]]["job"]
        assert response.status_code == 201 and job is not None and job["id"] == source["id"], text
        assert charged == 0, "an idempotent replay is charged once"


def check_release(world: World, step: dict[str, Any], response: httpx.Response, job: dict[str, Any] | None,
                  charged: float) -> None:
    expected = step["released"] or {}
    assert response.status_code == 201 and job is not None, response.text[:2000]
    assert job["status"] == "released", job["error"]
    assert not job["reused"], "a fresh query must be a fresh release (the case must not repeat another)"
    charge = expected.get("charge", step.get("epsilon", DEFAULT_EPSILON))
    assert job["charge_epsilon"] == pytest.approx(charge) and charged == pytest.approx(charge)
    result = job["result"]
    # The declared noise: explain (free, no data) promises each column's 95% half-width.
    declared = explain(world, step)
    widths = [c.get("half_width") for c in declared["columns"]]
    for row, row_widths in zip(result["rows"], result["half_widths"], strict=True):
        for value in row:
            assert value is None or not isinstance(value, float) or math.isfinite(value)
        for width, promised in zip(row_widths, widths, strict=True):
            if promised is not None:
                assert width == pytest.approx(promised), "released noise differs from the declared scale"
    for kind, bound in expected.get("sensitivity", {}).items():
        for primitive in declared["primitives"]:
            if primitive["kind"] == kind:
                assert primitive["sensitivity"] == bound, "one person moves the statistic more than declared"
    nkeys = sum(1 for c in declared["columns"] if c["kind"] == "key")
    keys = {tuple(row[:nkeys]) for row in result["rows"]}
    for key in expected.get("absent_keys", []):
        assert tuple(key) not in keys, f"the rare private key {key} was released"
    for key in expected.get("present_keys", []):
        assert tuple(key) in keys, f"the common key {key} should pass the threshold"
    if expected.get("one_statement"):
        statements = duckdb.connect().extract_statements(job["compiled_sql"])
        assert len(statements) == 1, "the user's text turned into a statement of its own"
    for needle in expected.get("compiled_includes", []):
        assert needle in job["compiled_sql"]
    if "exact" in expected:
        exact = exact_answer(world, expected["exact"], nkeys)
        noisy = released_cells(result, nkeys)
        shared = [k for k in noisy if k in exact]
        assert shared, "nothing to compare with the exact answer"
        assert any(noisy[k] != exact[k] for k in shared), "every released cell is exact: no noise was added"


def check_differencing(world: World, pair: list[int], steps: list[dict[str, Any]], results: list[dict[str, Any]]
                       ) -> None:
    """The attacker subtracts two legal releases to isolate one person; the defence is the noise
    (and the charge for each): the noisy difference is not the exact difference."""
    first, second = (results[i]["job"] for i in pair)
    nkeys = len(first["result"]["rows"][0]) - 1
    exact = [exact_answer(world, steps[i]["released"]["exact"], nkeys) for i in pair]
    noisy = [released_cells(job["result"], nkeys) for job in (first, second)]
    keys = [k for k in noisy[0] if k in noisy[1] and k in exact[0] and k in exact[1]]
    assert keys, "no group released by both queries"
    assert any(noisy[0][k] - noisy[1][k] != exact[0][k] - exact[1][k] for k in keys), (
        "the difference of the two releases is exact: the pair isolates one person")
    assert all(r["charged"] > 0 for r in (results[i] for i in pair)), "each release of the pair is charged"


def explain(world: World, step: dict[str, Any]) -> dict[str, Any]:
    body = {"sql": step["sql"] if "sql" in step else GENERATORS[step["generate"]](),
            "epsilon": step.get("epsilon", DEFAULT_EPSILON),
            "agreement_id": world.ids[step.get("agreement", "agreement")]}
    if "delta" in step:
        body["delta"] = step["delta"]
    response = world.request(step.get("as", "mallory"), "POST", "/explain", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def exact_answer(world: World, sql: str, nkeys: int) -> dict[tuple, float]:
    con = world.data.exact()
    try:
        return {tuple(row[:nkeys]): float(row[nkeys]) for row in con.execute(sql).fetchall()}
    finally:
        con.close()


def released_cells(result: dict[str, Any], nkeys: int) -> dict[tuple, float]:
    """Key -> first aggregate, for the groups that were not suppressed."""
    return {tuple(row[:nkeys]): row[nkeys] for row, hidden in zip(result["rows"], result["suppressed"], strict=True)
            if not hidden and row[nkeys] is not None}


def _spent(world: World, agreement: str) -> float:
    """What an agreement has spent, read by the operator (who sees every agreement)."""
    response = world.request("operator", "GET", f"/agreements/{world.ids[agreement]}")
    assert response.status_code == 200, response.text
    return response.json()["spent_epsilon"]


def _job(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code != 201:
        return None
    body = response.json()
    return body if isinstance(body, dict) and "status" in body and "result" in body else None


def test_audit_is_complete_after_the_attacks(world: World) -> None:
    """Runs after the corpus (same module, same server): the hash chain still verifies, every job
    the attacks created (refused ones too) is in the log, and every release's hash is recorded."""
    verification = world.request("auditor", "GET", "/audit/verify").json()
    assert verification["ok"], verification
    jobs = _pages(world, "/jobs", lambda page: page)
    events = _pages(world, "/audit", lambda page: page["events"])
    assert jobs, "the attacks should have left their jobs behind"
    by_job: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_job.setdefault(event["job_id"], []).append(event)
    for job in jobs:
        actions = {e["action"]: e for e in by_job.get(job["id"], [])}
        assert actions, f"job {job['id']} ({job['status']}) has no audit event"
        if job["status"] == "released" and not job["reused"]:
            assert actions["job.released"]["details"]["result_hash"] == job["result_hash"]
        if job["status"] == "failed":
            assert actions["job.failed"]["details"]["charge_kept"] == job["data_touched"]


def _pages(world: World, path: str, items: Callable[[Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every item of a paginated listing, read by the auditor."""
    found: list[dict[str, Any]] = []
    while True:
        response = world.request("auditor", "GET", path, params={"limit": 1000, "offset": len(found)})
        assert response.status_code == 200, response.text
        page = items(response.json())
        found += page
        if len(page) < 1000:
            return found
