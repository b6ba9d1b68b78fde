"""Amendments and licence reinstatement, on SQLite and PostgreSQL, through the service functions.

An amendment is an operator's decision on an agreement in force: a top-up, a later end, a
narrower or wider scope within what was requested. Each is one transaction with its audit event,
whose `budget` the books in `verify` hold the agreement to; a top-up racing with 200 jobs never
lets them overspend; nothing beyond the request can be granted (that is a new request).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from sandbox import accounts, agreements, audit
from sandbox import ledger as ledger_module
from sandbox.audit import Journal, checkpoints
from sandbox.errors import Conflict, Forbidden, InvalidParameter, SandboxError
from sandbox.jobs import JobService
from sandbox.store import Store, now
from sandbox.store.schema import EPSILON_UNIT, jobs, ledger
from sandbox.store.schema import agreements as agreement_rows
from sandbox.store.schema import audit as audit_log
from tests.service.conftest import RESIDENTS, World, seed

COST = 0.1


def query(i: int) -> str:
    return f"SELECT COUNT(*) FROM residents WHERE monthly_income > {i * 37}"


def verified(store: Store) -> audit.Verification:
    """`verify` as the server runs it: hashes, links, the books and this data directory's journal."""
    return audit.verify(store, checkpoints.Trust.of(None, (), store.journal))


def amended_events(store: Store, agreement_id: str) -> list[dict]:
    found, _ = audit.search(store, audit.AuditFilter(agreement_id=agreement_id, action="agreement.amended"),
                            limit=1000, newest_first=False)
    return found


def run(service: JobService, world: World, i: int, agreement_id: str | None = None) -> dict:
    job = service.submit(world.developer, sql=query(i), epsilon=COST, delta=None,
                         agreement_id=agreement_id or world.agreement_id)
    return service.wait(world.developer, job["id"], 60)


def test_a_top_up_reactivates_an_exhausted_agreement_and_every_amendment_is_in_the_chain(
        store: Store, demo_catalog, engine) -> None:
    world = seed(store, epsilon=2 * COST)
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        assert [run(service, world, i)["status"] for i in range(2)] == ["released"] * 2
        assert agreements.get(store, world.operator, world.agreement_id)["status"] == "exhausted"
        with pytest.raises(SandboxError):
            run(service, world, 2)

        topped = agreements.amend(store, world.operator, world.agreement_id, epsilon_add=3 * COST,
                                  reason="second phase of the study")
        assert topped["status"] == "active" and topped["budget_epsilon"] == pytest.approx(5 * COST)
        assert topped["remaining_epsilon"] == pytest.approx(3 * COST)
        assert topped["decision_reason"] == "second phase of the study" and topped["decided_by"] == world.operator.id
        assert [run(service, world, i)["status"] for i in range(3, 6)] == ["released"] * 3
        with pytest.raises(SandboxError) as refused:
            run(service, world, 6)
        assert refused.value.code in ("budget_exhausted", "agreement_inactive")

        later = agreements.amend(store, world.operator, world.agreement_id, epsilon=1.0, per_query_epsilon=0.2,
                                 reason="final top-up, capped")
        assert later["budget_epsilon"] == 1.0 and later["per_query_epsilon"] == 0.2 and later["status"] == "active"
    finally:
        service.close()

    events = amended_events(store, world.agreement_id)
    assert [e["details"]["reason"] for e in events] == ["second phase of the study", "final top-up, capped"]
    assert events[0]["actor"] == world.operator.id and events[0]["role"] == "operator"
    assert events[0]["details"]["changes"] == {"budget_epsilon": [0.2, 0.5], "status": ["exhausted", "active"]}
    assert events[0]["details"]["budget"] == {"epsilon": round(0.5 * EPSILON_UNIT), "delta": 0}
    assert events[1]["details"]["changes"] == {"budget_epsilon": [0.5, 1.0], "per_query_epsilon": [None, 0.2],
                                               "status": ["exhausted", "active"]}
    result = verified(store)
    assert result.ok and result.agreements == 1, result


def test_an_amended_budget_changed_behind_the_log_fails_verification(store: Store) -> None:
    """The amendment's event is what the books hold the row to: a database edit that 'tops up'
    without one is caught, naming the agreement."""
    world = seed(store, epsilon=0.5)
    agreements.amend(store, world.operator, world.agreement_id, epsilon_add=0.5, reason="top-up")
    assert verified(store).ok
    with store.transaction() as conn:
        conn.execute(update(agreement_rows).where(agreement_rows.c.id == world.agreement_id).values(
            budget_epsilon=agreement_rows.c.budget_epsilon + EPSILON_UNIT))
    result = verified(store)
    assert not result.ok and result.kind == "budget" and result.agreement_id == world.agreement_id
    assert "grants a budget of epsilon 2 (delta 0), but its audit events grant epsilon 1 (delta 0)" in result.reason


class HeldEngine:
    """The real engine, each job held until `gate` opens: reservations and top-ups race while
    no release (no 'exhausted' status) happens between them, when held."""

    def __init__(self, engine) -> None:
        self.engine, self.gate = engine, threading.Event()

    def execute(self, plan):
        assert self.gate.wait(60)
        return self.engine.execute(plan)


SUBMISSIONS, TOPUPS, THREADS = 200, 5, 32
START = 0.5  # epsilon; TOPUPS x COST more makes 1.0 = exactly 10 queries of COST


@pytest.mark.parametrize("releases", ["held", "interleaved"])
def test_top_ups_racing_with_200_jobs_never_overspend(store: Store, demo_catalog, engine, releases: str) -> None:
    """200 submissions and 5 concurrent top-ups of 0.1 on a budget of 0.5: the budget ends at
    exactly 1.0 (no top-up lost), exactly 10 jobs run, and jobs, ledger, agreement and the log's
    books agree. The second half of the submissions starts after the top-ups, so all 10 run."""
    world = seed(store, epsilon=START)
    held = HeldEngine(engine)
    if releases == "interleaved":
        held.gate.set()
    service = JobService(store, demo_catalog, held, parallel=2)

    def submit(i: int) -> tuple[str, str | None]:
        if i < 0:  # a top-up, among the first half of the submissions
            agreements.amend(store, world.operator, world.agreement_id, epsilon_add=COST, reason=f"top-up {-i}")
            return "amended", None
        try:
            return "accepted", service.submit(world.developer, sql=query(i), epsilon=COST, delta=None,
                                              agreement_id=world.agreement_id)["id"]
        except SandboxError as exc:
            return exc.code, exc.fields["job_id"]

    half = SUBMISSIONS // 2
    first = list(range(half))
    for k in range(TOPUPS):  # spread the top-ups through the first half
        first.insert((k + 1) * half // (TOPUPS + 1) + k, -(k + 1))
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(submit, first))
            outcomes += list(pool.map(submit, range(half, SUBMISSIONS)))
        held.gate.set()
        accepted = [job_id for code, job_id in outcomes if code == "accepted"]
        finished = [service.wait(world.developer, job_id, 60)["status"] for job_id in accepted]
    finally:
        held.gate.set()
        service.close()

    codes = Counter(code for code, _ in outcomes)
    assert codes["amended"] == TOPUPS and codes["accepted"] == 10, codes
    assert set(codes) <= {"amended", "accepted", "budget_exhausted", "agreement_inactive"}, codes
    assert finished == ["released"] * 10
    row = agreements.get(store, world.operator, world.agreement_id)
    assert row["budget_epsilon"] == row["spent_epsilon"] == pytest.approx(1.0) and row["status"] == "exhausted"
    with store.read() as conn:
        charged = conn.execute(select(ledger.c.epsilon).where(ledger.c.state == "committed")).scalars().all()
        assert sum(charged) == round(1.0 * EPSILON_UNIT) and len(charged) == 10
        statuses = Counter(conn.execute(select(jobs.c.status)).scalars())
        assert statuses == {"released": 10, "rejected": SUBMISSIONS - 10}
    budgets = [e["details"]["budget"]["epsilon"] for e in amended_events(store, world.agreement_id)]
    assert budgets == [round((START + k * COST) * EPSILON_UNIT) for k in range(1, TOPUPS + 1)], "no top-up lost"
    result = verified(store)
    assert result.ok, result


@pytest.mark.postgres
def test_a_release_racing_with_a_top_up_leaves_the_agreement_active(fresh_postgres_db: str, tmp_path, demo_catalog,
                                                                     engine, monkeypatch) -> None:
    """The top-up commits between the release's read of the agreement (spent = budget) and its
    update. Before: that update was a compare-and-set on the status alone and marked the topped-up
    agreement exhausted, so every later job was refused (found by the race test above)."""
    store = Store(fresh_postgres_db, journal=Journal.of(tmp_path, fresh_postgres_db))
    world = seed(store, epsilon=COST)
    real, calls = ledger_module.update, []

    def update(table):
        if table is agreement_rows and calls[-1:] == [ledger] and len(calls) < 3:  # in ledger.commit
            agreements.amend(store, world.operator, world.agreement_id, epsilon_add=COST, reason="top-up")
        calls.append(table)
        return real(table)

    monkeypatch.setattr(ledger_module, "update", update)
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        assert run(service, world, 1)["status"] == "released"
        assert agreements.get(store, world.operator, world.agreement_id)["status"] == "active"
        assert run(service, world, 2)["status"] == "released"
    finally:
        service.close()
        store.close()
    assert calls[:3] == [agreement_rows, ledger, agreement_rows], "reserve, then commit (with the top-up between)"


def test_an_expired_agreement_extended_works(store: Store, demo_catalog, engine) -> None:
    world = seed(store)
    with store.transaction() as conn:
        request = agreements.request(conn, world.developer, purpose="Ended study", legal_basis="Test data only",
                                     datasets={"residents": None}, valid_from="2020-01-01", valid_to="2021-01-01",
                                     epsilon=1.0, delta=0.0, known=RESIDENTS)
        agreements.approve(conn, world.operator, request["id"], reason="it ran in 2020")
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        with pytest.raises(SandboxError) as refused:
            run(service, world, 1, request["id"])
        assert refused.value.code == "agreement_inactive" and "expired" in refused.value.message
        assert agreements.get(store, world.operator, request["id"])["status"] == "expired"
        with pytest.raises(InvalidParameter, match="ended on 2021-01-01; give a later end date"):
            agreements.amend(store, world.operator, request["id"], epsilon_add=1.0, reason="more")
        with pytest.raises(InvalidParameter, match="must lie in the future"):
            agreements.amend(store, world.operator, request["id"], valid_to="2021-06-01", reason="not enough")

        extended = agreements.amend(store, world.operator, request["id"], valid_to="2100-01-01",
                                    reason="follow-up study approved")
        assert extended["status"] == "active" and extended["valid_to"] == "2100-01-01"
        assert run(service, world, 2, request["id"])["status"] == "released"
    finally:
        service.close()
    [event] = amended_events(store, request["id"])
    assert event["details"]["changes"] == {"valid_to": ["2021-01-01", "2100-01-01"], "status": ["expired", "active"]}
    assert verified(store).ok


def requested_columns(store: Store, world: World) -> str:
    """An agreement requested for two columns of residents and approved for one."""
    with store.transaction() as conn:
        request = agreements.request(conn, world.developer, purpose="Age by district", legal_basis="Test data only",
                                     datasets={"residents": ["district", "age"]}, valid_from="2020-01-01",
                                     valid_to="2100-01-01", epsilon=1.0, delta=0.0, known=RESIDENTS)
        agreements.approve(conn, world.operator, request["id"], datasets={"residents": ["district"]},
                           reason="district only, for now")
    return request["id"]


def test_a_scope_is_widened_up_to_the_request_and_never_beyond(store: Store) -> None:
    world = seed(store)
    agreement_id = requested_columns(store, world)
    widened = agreements.amend(store, world.operator, agreement_id, datasets={"residents": ["age", "district"]},
                               reason="age was requested and is needed")
    assert widened["datasets"] == {"residents": ["age", "district"]}
    assert widened["requested_datasets"] == {"residents": ["district", "age"]}

    beyond = [
        ({"residents": ["district", "monthly_incme"]}, "Column(s) monthly_incme of 'residents' were not requested "
         "(the request names district, age). An amendment stays within the request; the developer requests a new "
         "agreement for anything beyond the request."),
        ({"residents": ["district", "ag"]}, "Column(s) ag of 'residents' were not requested (the request names "
         "district, age). Did you mean 'age'?"),
        ({"residents": ["district"], "enterprises": None}, "Dataset 'enterprises' was not requested (the request "
         "names residents)."),
        ({"residens": None}, "Dataset 'residens' was not requested (the request names residents). Did you mean "
         "'residents'?"),
        ({}, "Keep at least one dataset in scope; to end the agreement, revoke it."),
    ]
    for scope, message in beyond:
        with pytest.raises(InvalidParameter) as refused:
            agreements.amend(store, world.operator, agreement_id, datasets=scope, reason="try", known=RESIDENTS)
        assert refused.value.message.startswith(message), refused.value.message

    as_requested = agreements.amend(store, world.operator, agreement_id, datasets={"residents": ["district"]},
                                    reason="narrower again")
    assert as_requested["datasets"] == {"residents": ["district"]}
    again = agreements.amend(store, world.operator, agreement_id, datasets={"residents": None},
                             reason="null columns: as requested")
    assert again["datasets"] == {"residents": ["age", "district"]}, "null is what was requested, not every column"
    assert [e["details"]["changes"]["datasets"] for e in amended_events(store, agreement_id)] == [
        [{"residents": ["district"]}, {"residents": ["age", "district"]}],
        [{"residents": ["age", "district"]}, {"residents": ["district"]}],
        [{"residents": ["district"]}, {"residents": ["age", "district"]}],
    ]
    assert verified(store).ok


def test_an_approval_with_null_columns_grants_the_requested_columns_not_all(store: Store, demo_catalog,
                                                                            engine) -> None:
    """Before: approving {"residents": null} for a request of two columns stored null, which
    `usable` reads as every column, so the developer could query columns never requested."""
    world = seed(store)
    with store.transaction() as conn:
        request = agreements.request(conn, world.developer, purpose="Age by district", legal_basis="Test data only",
                                     datasets={"residents": ["district", "age"]}, valid_from="2020-01-01",
                                     valid_to="2100-01-01", epsilon=1.0, delta=0.0, known=RESIDENTS)
        approved = agreements.approve(conn, world.operator, request["id"], datasets={"residents": None})
    assert approved["datasets"] == {"residents": ["age", "district"]}
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        with pytest.raises(Forbidden, match="does not cover column"):
            service.submit(world.developer, sql="SELECT AVG(monthly_income) FROM residents", epsilon=COST,
                           delta=None, agreement_id=request["id"])
    finally:
        service.close()


@pytest.mark.parametrize("change,error,message", [
    ({"epsilon": 0.05}, InvalidParameter, "has spent epsilon 0.1 (delta 0); its budget cannot be less"),
    ({"epsilon": 1.0, "epsilon_add": 1.0}, InvalidParameter, "Give either epsilon (the new total) or epsilon_add"),
    ({"epsilon_add": 100.0}, InvalidParameter, "epsilon must be a finite number in (0, 100]"),
    ({"per_query_epsilon": 5.0}, InvalidParameter, "The per-query cap (epsilon 5) must be in (0, the budget's"),
    ({"valid_to": "2100-01-01"}, InvalidParameter, "Nothing to amend"),
    ({}, InvalidParameter, "Nothing to amend"),
    ({"epsilon_add": 1.0, "reason": " "}, InvalidParameter, "Give a reason for the amendment"),
])
def test_an_amendment_that_cannot_be_is_refused_and_changes_nothing(store: Store, demo_catalog, engine, change,
                                                                     error, message) -> None:
    world = seed(store)
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        run(service, world, 1)
    finally:
        service.close()
    before = agreements.get(store, world.operator, world.agreement_id)
    with pytest.raises(error) as refused:
        agreements.amend(store, world.operator, world.agreement_id, **{"reason": "why"} | change)
    assert message in refused.value.message, refused.value.message
    assert agreements.get(store, world.operator, world.agreement_id) == before
    assert amended_events(store, world.agreement_id) == []


@pytest.mark.parametrize("status,words", [
    ("requested", "Agreement {id} is requested; only an active, exhausted or expired agreement can be amended. "
                  "Decide the request first (approve it)."),
    ("rejected", "Agreement {id} is rejected; only an active, exhausted or expired agreement can be amended. "
                 "The developer requests a new agreement."),
    ("revoked", "Agreement {id} is revoked; only an active, exhausted or expired agreement can be amended. "
                "The developer requests a new agreement."),
])
def test_only_an_agreement_in_force_or_ended_can_be_amended(store: Store, status: str, words: str) -> None:
    world = seed(store)
    with store.transaction() as conn:
        row = agreements.request(conn, world.developer, purpose="p", legal_basis="b", datasets={"residents": None},
                                 valid_from="2020-01-01", valid_to="2100-01-01", epsilon=1.0, delta=0.0,
                                 known=RESIDENTS)
        if status == "rejected":
            agreements.reject(conn, world.operator, row["id"], "no")
        if status == "revoked":
            agreements.approve(conn, world.operator, row["id"])
            agreements.revoke(conn, world.operator, row["id"], "over")
    with pytest.raises(Conflict) as refused:
        agreements.amend(store, world.operator, row["id"], epsilon_add=1.0, reason="more")
    assert refused.value.message == words.format(id=row["id"])
    with pytest.raises(Forbidden, match="Only operators amend agreements"):
        agreements.amend(store, world.auditor, world.agreement_id, epsilon_add=1.0, reason="more")


def test_a_decision_on_the_wrong_status_reads_as_english(store: Store) -> None:
    world = seed(store)
    agreements.revoke(store, world.operator, world.agreement_id, "over")
    with pytest.raises(Conflict) as refused:
        agreements.revoke(store, world.operator, world.agreement_id, "again")
    assert refused.value.message.endswith("is revoked; only an active agreement can be revoked.")
    with pytest.raises(Conflict, match="only a requested agreement can be approved.$"):
        agreements.approve(store, world.operator, world.agreement_id)


@pytest.mark.parametrize("scope,message", [
    ({"resident": None}, "Unknown dataset 'resident'. Did you mean 'residents'? The catalog (GET /datasets) lists "
                          "every dataset."),
    ({"residents": ["districts"]}, "Dataset 'residents' has no queryable column(s) districts. Did you mean "
                                   "'district'?"),
    ({"residents": ["agee", "sexx"]}, "Dataset 'residents' has no queryable column(s) agee, sexx. Did you mean "
                                      "'age' for 'agee', 'sex' for 'sexx'?"),
    ({"residents": ["zzz"]}, "Dataset 'residents' has no queryable column(s) zzz. Its queryable columns: age, "
                             "district, household_size, monthly_income, sex."),
])
def test_a_misspelt_scope_suggests_what_was_meant(store: Store, scope, message: str) -> None:
    world = seed(store)
    with pytest.raises(InvalidParameter) as refused:
        agreements.request(store, world.developer, purpose="p", legal_basis="b", datasets=scope,
                           valid_from="2020-01-01", valid_to="2100-01-01", epsilon=1.0, delta=0.0, known=RESIDENTS)
    assert refused.value.message == message


def test_a_suspended_developer_is_told_why_and_a_reinstated_one_works_again(store: Store, demo_catalog,
                                                                             engine) -> None:
    world = seed(store)
    licence = accounts.licence_of(store, world.developer.id)
    with pytest.raises(InvalidParameter, match="Give a reason to suspend the licence"):
        accounts.suspend_licence(store, world.operator, licence["id"], "")
    accounts.suspend_licence(store, world.operator, licence["id"], "annual security review overdue")
    service = JobService(store, demo_catalog, engine, parallel=1)
    try:
        with pytest.raises(Forbidden) as refused:
            run(service, world, 1)
        assert refused.value.message == (
            "Your licence XM-TEST-0001 is suspended (the operator's reason: annual security review overdue); "
            "contact the operator to have it reinstated.")
        with pytest.raises(Conflict, match="only an active licence can be suspended"):
            accounts.suspend_licence(store, world.operator, licence["id"], "again")
        with pytest.raises(Forbidden, match="Only operators reinstate licences"):
            accounts.reinstate_licence(store, world.developer, licence["id"], "myself")
        reinstated = accounts.reinstate_licence(store, world.operator, licence["id"], "review completed")
        assert reinstated["status"] == "active" and reinstated["status_reason"] == "review completed"
        with pytest.raises(Conflict, match="only a suspended licence can be reinstated"):
            accounts.reinstate_licence(store, world.operator, licence["id"], "again")
        assert run(service, world, 2)["status"] == "released"
    finally:
        service.close()
    found, _ = audit.search(store, audit.AuditFilter(action="licence.reinstated"), limit=10)
    assert [e["details"] for e in found] == [{"licence_id": licence["id"], "developer_id": world.developer.id,
                                              "reason": "review completed"}]
    assert verified(store).ok


def test_the_history_searches_and_filters_decided_agreements(store: Store) -> None:
    world = seed(store)  # "Service tests", approved, Xiamen University
    with store.transaction() as conn:
        _, other, _ = accounts.create_licence(conn, world.operator, name="李明", organisation="厦门数据科技有限公司",
                                              licence_number="XM-TEST-0002", valid_from="2020-01-01",
                                              valid_to="2100-01-01")
        made = [agreements.request(conn, other, purpose=purpose, legal_basis="b", datasets={"residents": None},
                                   valid_from="2020-01-01", valid_to="2100-01-01", epsilon=1.0, delta=0.0,
                                   known=RESIDENTS)["id"] for purpose in ("Income by district", "Household 50%_x")]
        agreements.reject(conn, world.operator, made[0], "too broad")
    waiting = made[1]

    def ids(**given) -> list[str]:
        found, total = agreements.search(store, world.auditor, agreements.Search(**given), limit=50)
        assert total == len(found)
        return sorted(a["id"] for a in found)

    assert ids(decided=True) == sorted([world.agreement_id, made[0]])
    assert ids() == sorted([world.agreement_id, *made])
    assert ids(text="xiamen univ") == [world.agreement_id], "organisation, any case"
    assert ids(text="厦门数据") == sorted(made) and ids(organisation="数据科技") == sorted(made)
    assert ids(developer="李") == sorted(made) and ids(developer=world.developer.id) == [world.agreement_id]
    assert ids(text="INCOME") == [made[0]] and ids(purpose="income", status=("rejected",)) == [made[0]]
    assert ids(text="50%_") == [waiting], "LIKE wildcards are searched for, not used"
    assert ids(text="50%") == [waiting] and ids(text="_x") == [waiting]
    assert ids(dataset="residents", status=("active", "rejected")) == sorted([world.agreement_id, made[0]])
    assert ids(dataset="resident") == [], "a dataset filter is exact"
    assert ids(text="居民", text_datasets=("residents",)) == sorted([world.agreement_id, *made])
    assert ids(decided_since="2000-01-01", decided_until="2999-01-01") == sorted([world.agreement_id, made[0]])
    assert ids(decided_since=now(60)) == [] and ids(decided_until="2000-01-01") == []

    page, total = agreements.search(store, world.operator, agreements.Search(), limit=2, offset=0)
    rest, _ = agreements.search(store, world.operator, agreements.Search(), limit=2, offset=2)
    assert total == 3 and len(page) == 2 and len(rest) == 1
    assert [a["id"] for a in page] == [made[0], waiting], "the last decision first; a request counts from itself"
    assert {page[0]["developer_name"], page[0]["organisation"]} == {"李明", "厦门数据科技有限公司"}
    own, total = agreements.search(store, other, agreements.Search(), limit=50)
    assert total == 2 and {a["id"] for a in own} == set(made), "a developer sees only their own"


def test_an_old_database_gains_the_columns_from_its_audit_log(database: str, tmp_path) -> None:
    """Migration 7 on a database from before it: the requested scope, the decision time and a
    suspension's reason are read from the events that recorded them."""
    from sqlalchemy import text

    from sandbox.store import migrations
    from sandbox.store.schema import licences, schema_version

    store = Store(database)
    world = seed(store)
    agreement_id = requested_columns(store, world)
    licence = accounts.licence_of(store, world.developer.id)
    accounts.suspend_licence(store, world.operator, licence["id"], "checking")
    with store.transaction() as conn:  # as version 6 had it
        conn.execute(text("DROP INDEX agreements_decided"))
        for table, column in (("agreements", "decided_at"), ("agreements", "requested_datasets"),
                              ("licences", "status_reason")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(update(schema_version).values(version=6))
    store.close()
    upgraded = Store(database)
    try:
        with upgraded.read() as conn:
            assert conn.execute(select(schema_version.c.version)).scalar_one() == len(migrations.MIGRATIONS)
            row = conn.execute(select(agreement_rows).where(agreement_rows.c.id == agreement_id)).one()
            approved = conn.execute(select(audit_log.c.ts).where(audit_log.c.agreement_id == agreement_id,
                                                                 audit_log.c.action == "agreement.approved")).scalar()
            reason = conn.execute(select(licences.c.status_reason).where(licences.c.id == licence["id"])).scalar()
        assert json.loads(row.requested_datasets) == {"residents": ["district", "age"]}
        assert json.loads(row.datasets) == {"residents": ["district"]} and row.decided_at == approved
        assert reason == "checking"
        widened = agreements.amend(upgraded, world.operator, agreement_id, datasets={"residents": ["district", "age"]},
                                   reason="as requested")
        assert widened["datasets"] == {"residents": ["age", "district"]}
    finally:
        upgraded.close()
