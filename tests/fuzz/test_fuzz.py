"""Property-based fuzzing of the compiler and the engine (hypothesis).

Queries come from a grammar over every policy's schema (grammar.py); each one the compiler
accepts runs, as the worker runs it, on adversarial data registered for the same schemas
(data.py). Properties, each checked on every accepted query:

1. it never fails at run time (whether a job fails must not depend on the data);
2. the base columns the bound tree says it reads are the ones its generated SQL reads (found
   independently by sqlglot's optimizer), and they are the plan's scope, which the service
   checks against the agreement;
3. removing one unit from the whole domain moves every exact primitive by at most its
   declared sensitivity (every query over a dataset with max_rows > 1, fused or not);
4. its output step releases the same table evaluated in Python (engine/output_evaluator.py)
   as in DuckDB, on the noisy table the release had and on the same moved to edge values.

`make test` runs FUZZ_EXAMPLES=2000 generated queries (the default: a regression net that keeps
the suite short, with the broken controls below caught within a few hundred); `make fuzz` runs a long
campaign (FUZZ_EXAMPLES and FUZZ_MIN_ACCEPTED set there). A failure prints the shrunk query.
Figures of the last run: tests/output/fuzz.txt.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from sqlglot import exp

from sandbox.catalog import Catalog
from sandbox.compiler import compile_query, typecheck
from sandbox.compiler.parse import parse
from sandbox.compiler.plan import Plan
from sandbox.compiler.render import Renderer
from sandbox.compiler.scope import Bound, Scope
from sandbox.compiler.types import BIGINT, Typed
from sandbox.engine import output_evaluator
from sandbox.engine.lockdown import open_locked_connection
from sandbox.engine.worker import Limits
from sandbox.errors import BudgetExceeded, InvalidParameter, SQLRejected
from tests.conftest import POLICIES, REPO
from tests.fuzz.data import build_catalog
from tests.fuzz.grammar import Schema, queries
from tests.fuzz.references import references
from tests.support.exact import with_totals
from tests.support.output import at_edges, check_both_ways, noisy_table

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
MIN_ACCEPTED = int(os.environ.get("FUZZ_MIN_ACCEPTED", "0"))
PROGRESS_EVERY = 1000  # accepted queries between progress reports (FUZZ_REPORT)
NEIGHBOURS_PER_QUERY = int(os.environ.get("FUZZ_NEIGHBOURS", "1"))  # units removed per query
REFUSALS = (SQLRejected, BudgetExceeded, InvalidParameter)
EVALUATED = "output steps evaluated in Python, equal to DuckDB's"


@dataclass
class World:
    catalog: Catalog
    schema: Schema
    locked: duckdb.DuckDBPyConnection  # as the worker runs plans
    shadow: duckdb.DuckDBPyConnection  # writable copies, for neighbouring datasets
    units: dict[str, list]  # domain -> unit ids present
    tally: Counter = field(default_factory=Counter)
    rules: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    catalog = build_catalog(POLICIES, tmp_path_factory.mktemp("fuzz"))
    datasets = catalog.list()
    locked = open_locked_connection({d.name: d.engine_path for d in datasets}, Limits(threads=1))
    shadow = duckdb.connect()
    units: dict[str, set] = {}
    for d in datasets:
        shadow.execute(f'CREATE SCHEMA "{d.name}"')
        shadow.execute(f"ATTACH '{d.engine_path}' AS src (READ_ONLY)")
        shadow.execute(f'CREATE TABLE "{d.name}".data AS SELECT * FROM src.main.data')
        shadow.execute("DETACH src")
        if not d.policy.public:
            found = shadow.execute(f'SELECT DISTINCT "{d.policy.unit}" FROM "{d.name}".data').fetchall()
            units.setdefault(d.policy.domain or d.name, set()).update(r[0] for r in found)
    world = World(
        catalog,
        Schema.of(catalog),
        locked,
        shadow,
        {k: sorted(v, key=lambda u: (u is None, u if u is not None else 0)) for k, v in units.items()},
    )
    yield world
    locked.close()
    shadow.close()
    _report(world)


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_queries(world: World, data: st.DataObject) -> None:
    check_query(world, data)


def check_query(world: World, data: st.DataObject) -> None:
    """Compile one generated query; if accepted, check the three properties on it."""
    sql = data.draw(queries(world.schema), label="query")
    note(f"SQL: {sql}")
    world.tally["generated"] += 1
    try:
        plan = compile_query(sql, world.catalog, epsilon=1.0)
    except REFUSALS as err:
        world.tally["refused"] += 1
        world.rules[err.fields.get("rule", err.code)] += 1
        assert err.message.rstrip().endswith("."), f"a refusal ends with its fix: {err.message}"
        return
    world.tally["accepted"] += 1
    try:
        released = noisy_table(plan, world.locked)
    except Exception as err:  # noqa: BLE001 - any failure is the finding
        world.tally["run-time failures"] += 1
        pytest.fail(
            f"accepted query failed at run time ({type(err).__name__}: {err})\nSQL: {sql}\n"
            f"generated: {plan.aggregate_sql}\n{plan.histogram_sql}"
        )
    _check_scope(world, plan, sql)
    _check_output_step(world, plan, released)
    if _multi_row(world, plan):
        world.tally["neighbour checks"] += _check_neighbours(world, plan, sql, data)
    if world.tally["accepted"] % PROGRESS_EVERY == 0:  # a long campaign shows how far it got
        _report(world, final=False)


def test_campaign_size(world: World) -> None:
    """The campaign ran what it was asked to (runs after the fuzzing test in this module)."""
    assert world.tally["generated"] >= EXAMPLES
    assert world.tally["accepted"] >= max(MIN_ACCEPTED, EXAMPLES // 2), world.tally
    assert world.tally[EVALUATED] >= world.tally["accepted"] // 2, world.tally  # property 4 is not vacuous


def _unguarded_cast(self, node):
    typed = self.facts.of(node)
    return exp.Cast(this=self.render(node.this), to=exp.DataType.build(typed.source or typed.type.name))


def _outer_reads_only(self):
    found = {d.name: set() for d in self.scope.datasets()}
    for relation, name in self.refs.values():
        if relation in self.scope.relations:
            for base in relation.outputs[name].reads:
                found.setdefault(base.dataset, set()).add(base.name)
    return found


_TAG = output_evaluator._tag
BROKEN = {
    "CAST without TRY": (Renderer, "_cast", _unguarded_cast),
    "BIGINT evaluated as DOUBLE": (output_evaluator, "_tag", lambda t: "d" if pa.types.is_int64(t) else _TAG(t)),
    "no overflow guard": (typecheck, "_integer_result", lambda tc, node, r: Typed(BIGINT, None)),
    "scope ignores pre-aggregations": (Bound, "reads", _outer_reads_only),
    "sensitivity of one row": (Scope, "max_rows", property(lambda self: 1)),
}


@pytest.mark.parametrize("control", BROKEN)
def test_broken_controls_are_caught(world: World, control: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzer can fail: each deliberately broken compiler is caught, within the number of
    queries tests/output/fuzz.txt reports (no shrinking, so this stays quick)."""
    owner, name, replacement = BROKEN[control]
    monkeypatch.setattr(owner, name, replacement)
    shadow = World(world.catalog, world.schema, world.locked, world.shadow, world.units)

    @settings(
        max_examples=2000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
        derandomize=True,  # deterministic: caught within the same number of queries on every run
    )
    @given(data=st.data())
    def campaign(data: st.DataObject) -> None:
        check_query(shadow, data)

    assert caught(campaign), f"the fuzzer did not catch: {control}"
    world.tally[f"control caught after: {control}"] = shadow.tally["generated"]


FINDINGS = (AssertionError, pytest.fail.Exception)


def caught(campaign) -> bool:
    """Whether the campaign failed with a finding. Hypothesis replays a failing query to confirm
    it; the replay draws fresh noise, which may suppress the groups that showed the finding, and
    Hypothesis then calls the failure flaky. The first run's finding still counts."""
    try:
        campaign()
    except FINDINGS:
        return True
    except FlakyFailure as flaky:  # it wraps pytest.fail's BaseException: the finding is the cause
        return flaky.subgroup(lambda e: isinstance(e, FINDINGS) or isinstance(e.__cause__, FINDINGS)) is not None
    return False


@pytest.mark.parametrize("how", [AssertionError, pytest.fail])
@pytest.mark.parametrize("fails", ["every time", "on the first run only", "never"])
def test_a_finding_counts_when_its_replay_draws_other_noise(fails: str, how) -> None:
    """A finding that only fresh noise hides on Hypothesis's replay is still caught (CI once
    failed the BIGINT-as-DOUBLE control on that replay), whether an assertion or pytest.fail
    (a run-time failure) reports it; a campaign without one is not."""
    calls = []

    @settings(max_examples=5, database=None, phases=[Phase.generate], derandomize=True)
    @given(n=st.integers(0, 3))
    def campaign(n: int) -> None:
        calls.append(n)
        if fails == "every time" or (fails == "on the first run only" and len(calls) == 1):
            if how is AssertionError:
                raise AssertionError("a finding")
            pytest.fail("a finding")

    assert caught(campaign) is (fails != "never")


# -- property 4 ----------------------------------------------------------------------------
def _check_output_step(world: World, plan: Plan, released: pa.Table) -> None:
    for table in (released, at_edges(released, [p.id for p in plan.primitives])):
        if check_both_ways(plan.output_sql, table):
            world.tally[EVALUATED] += 1


# -- property 2 ----------------------------------------------------------------------------
def _check_scope(world: World, plan: Plan, sql: str) -> None:
    private = {d.name: d for d in world.catalog.list() if not d.policy.public}
    units = {(name, d.policy.unit) for name, d in private.items()}
    reads = {(d, c) for d, cols in plan.scope.items() for c in cols if d in private} - units
    found, names = references(plan)
    generated = {(d, c) for d, c in found if d in private} - units
    assert generated <= reads, f"the SQL reads {sorted(generated - reads)} outside the checked scope\nSQL: {sql}"
    # COUNT(x) of a value that is never NULL (a declared non-null column, CASE ... ELSE 0 END) is
    # COUNT(*): the scope still names what the query reads, the SQL need not read it
    parsed = parse(sql)  # the compiler's parser (it reads TOP n, which DuckDB's grammar does not)
    counted = {c.name for n in parsed.find_all(exp.Count) for c in n.find_all(exp.Column)}
    missing = {
        (d, c)
        for d, c in reads - generated
        if c not in names and c not in private[d].non_null_columns and c not in counted
    }
    assert not missing, f"the scope names {sorted(missing)} that the generated SQL never mentions\nSQL: {sql}"
    assert set(plan.scope) >= {d for d, _ in generated}


# -- property 3 ----------------------------------------------------------------------------
def _multi_row(world: World, plan: Plan) -> bool:
    return any(
        world.catalog.get(name).policy.privacy_unit and world.catalog.get(name).policy.privacy_unit.max_rows > 1
        for name in plan.attach
    )


def _exact(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict[tuple, dict]:
    nkeys = len(plan.key_names)
    result: dict[tuple, dict] = {}
    for sql in (plan.aggregate_sql, *plan.histogram_sql.values()):
        text = sql
        for name in plan.attach:
            text = text.replace(f'"{name}".main.data', f'"{name}".data')
        cursor = con.execute(text)
        names = [d[0] for d in cursor.description][nkeys:]
        is_histogram = sql is not plan.aggregate_sql
        pid = next((p for p, s in plan.histogram_sql.items() if s is sql), None)
        for row in cursor.fetchall():
            group = result.setdefault(tuple(_key(v) for v in row[:nkeys]), {})
            if is_histogram:
                group.setdefault(pid, {})[int(row[nkeys])] = int(row[nkeys + 1])
            else:
                group.update(zip(names, row[nkeys:], strict=True))
    with_totals(plan, result)
    return result


def _key(value):
    return ("nan",) if isinstance(value, float) and value != value else value


def _check_neighbours(world: World, plan: Plan, sql: str, data: st.DataObject) -> int:
    domain = world.catalog.get(plan.dataset).policy.domain or plan.dataset
    same = [
        n
        for n in plan.attach
        if (world.catalog.get(n).policy.domain or n) == domain and not world.catalog.get(n).policy.public
    ]
    candidates = world.units[domain]
    chosen = data.draw(
        st.lists(st.sampled_from(candidates), min_size=1, max_size=NEIGHBOURS_PER_QUERY, unique=True),
        label="removed units",
    )
    full = _exact(world.shadow, plan)
    for unit in chosen:
        world.shadow.execute("BEGIN TRANSACTION")
        try:
            for name in same:
                column = world.catalog.get(name).policy.unit
                world.shadow.execute(f'DELETE FROM "{name}".data WHERE "{column}" IS NOT DISTINCT FROM ?', [unit])
            neighbour = _exact(world.shadow, plan)
        finally:
            world.shadow.execute("ROLLBACK")
        _within_sensitivity(plan, full, neighbour, f"removing unit {unit!r}\nSQL: {sql}")
    return len(chosen)


def _within_sensitivity(plan: Plan, a: dict, b: dict, context: str) -> None:
    groups = set(a) | set(b)
    for p in plan.primitives:
        if p.kind == "quantile":
            change = sum(
                abs(a.get(g, {}).get(p.id, {}).get(i, 0) - b.get(g, {}).get(p.id, {}).get(i, 0))
                for g in groups
                for i in set(a.get(g, {}).get(p.id, {})) | set(b.get(g, {}).get(p.id, {}))
            )
        else:
            change = sum(abs(int(a.get(g, {}).get(p.id) or 0) - int(b.get(g, {}).get(p.id) or 0)) for g in groups)
        assert change <= p.sensitivity, f"{p.id} ({p.kind}) moved by {change} > {p.sensitivity} {context}"
    sel = plan.selection
    if sel is not None:
        moves = [
            abs(int(a.get(g, {}).get(sel.primitive) or 0) - int(b.get(g, {}).get(sel.primitive) or 0)) for g in groups
        ]
        moved = [m for m in moves if m]
        assert len(moved) <= sel.l0, f"selection touched {len(moved)} groups > l0 = {sel.l0} {context}"
        assert max(moved, default=0) <= sel.linf, f"selection moved a group by {max(moved)} > {sel.linf} {context}"
        assert sum(moved) <= sel.l1, f"selection moved {sum(moved)} > l1 = {sel.l1} {context}"


def _report(world: World, final: bool = True) -> None:
    report = REPO / os.environ.get("FUZZ_REPORT", "tests/output/fuzz.txt")
    report.parent.mkdir(parents=True, exist_ok=True)
    seconds = time.monotonic() - world.started
    lines = [
        f"fuzz campaign{'' if final else ' (in progress)'}: {world.tally['generated']} generated queries in "
        f"{seconds:.0f} s",
        f"accepted and run on adversarial data: {world.tally['accepted']} "
        f"(run-time failures: {world.tally['run-time failures']})",
        f"refused at compile time: {world.tally['refused']}",
        f"neighbour checks (unit removed, every primitive within its sensitivity): {world.tally['neighbour checks']}",
        f"{EVALUATED} (real and edge-value noisy tables): {world.tally[EVALUATED]}",
        "refusals by rule: " + ", ".join(f"{k} {v}" for k, v in world.rules.most_common()),
        *(
            f"broken {k.removeprefix('control caught after: ')}: caught after {v} queries"
            for k, v in world.tally.items()
            if k.startswith("control")
        ),
    ]
    report.write_text("\n".join(lines) + "\n")
    if final:
        print("\n" + "\n".join(lines))
