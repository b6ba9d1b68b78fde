"""Data stewards (sandbox/stewards.py): a fused request waits for every owner's steward and the
operator, a steward's limits and suspension bind the next job, each step is audited, and the
books still balance. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import insert

from sandbox import accounts, agreements, audit, ledger, stewards
from sandbox.accounts import User
from sandbox.catalog import Catalog
from sandbox.errors import AgreementInactive, BudgetExhausted, Conflict, Forbidden, InvalidParameter, NotFound
from sandbox.jobs import JobService
from sandbox.store import Store, now
from sandbox.store.schema import jobs

FUSED = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m "
         "ON r.person_id = m.person_id GROUP BY r.district")
RESIDENTS_ONLY = "SELECT district, COUNT(*) FROM residents GROUP BY district"


@dataclass
class Cast:
    operator: User
    auditor: User
    developer: User
    police: User  # steward of residents' owner
    health: User  # steward of medical_visits' owner
    owners: dict[str, str]
    known: dict[str, set[str]]


def cast(store: Store, catalog: Catalog) -> Cast:
    owners, known = catalog.owners(), catalog.scopes()
    with store.transaction() as conn:
        admin, _ = accounts.create_user(conn, "Admin", "admin")
        operator, _ = accounts.create_user(conn, "Operator", "operator", by=admin)
        auditor, _ = accounts.create_user(conn, "Auditor", "auditor", by=admin)
        police, _ = accounts.create_user(conn, "PSB steward", "steward", by=admin,
                                         organisation=owners["residents"], owners=set(owners.values()))
        health, _ = accounts.create_user(conn, "Health steward", "steward", by=admin,
                                         organisation=owners["medical_visits"])
        _, developer, _ = accounts.create_licence(
            conn, operator, name="Developer", organisation="Xiamen University", licence_number="XM-STEWARD-1",
            valid_from="2020-01-01", valid_to="2100-01-01")
    return Cast(operator, auditor, developer, police, health, owners, known)


def fused_request(store: Store, people: Cast, epsilon: float = 2.0,
                  datasets: dict | None = None) -> str:
    return agreements.request(
        store, people.developer, purpose="Health-care use by district", legal_basis="Public-interest research",
        datasets=datasets or {"residents": None, "medical_visits": None}, valid_from="2020-01-01",
        valid_to="2100-01-01", epsilon=epsilon, delta=1e-6, known=people.known, owners=people.owners)["id"]


@pytest.fixture
def service(store: Store, demo_catalog, engine):
    jobs = JobService(store, demo_catalog, engine, parallel=1)
    yield jobs
    jobs.close()


def run(service: JobService, developer: User, agreement_id: str, sql: str = FUSED, epsilon: float = 0.1) -> dict:
    job = service.submit(developer, sql=sql, epsilon=epsilon, delta=None, agreement_id=agreement_id)
    return service.wait(developer, job["id"], 60)


def test_a_fused_request_waits_for_both_stewards_and_the_operator_and_a_suspension_stops_the_next_job(
        store: Store, demo_catalog, service: JobService) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    parts = {p["dataset"]: p for p in agreements.get(store, people.operator, agreement_id)["parts"]}
    assert {name: p["status"] for name, p in parts.items()} == {"medical_visits": "pending", "residents": "pending"}

    approved = agreements.approve(store, people.operator, agreement_id, reason="fine by the bureau")
    assert approved["status"] == "awaiting"
    with pytest.raises(AgreementInactive, match="data stewards"):
        run(service, people.developer, agreement_id)

    stewards.approve(store, people.police, agreement_id, "residents", reason="district level only")
    assert agreements.get(store, people.operator, agreement_id)["status"] == "awaiting"
    with pytest.raises(AgreementInactive):
        run(service, people.developer, agreement_id)

    part = stewards.approve(store, people.health, agreement_id, "medical_visits", epsilon=0.5,
                            columns=["person_id", "cost"], reason="half an epsilon for our data")
    assert part["status"] == "approved" and part["budget_epsilon"] == pytest.approx(0.5)
    assert agreements.get(store, people.developer, agreement_id)["status"] == "active"

    assert run(service, people.developer, agreement_id)["status"] == "released"
    spent = {p["dataset"]: p["spent_epsilon"] for p in stewards.parts(store, agreement_id)}
    assert spent == {"medical_visits": pytest.approx(0.1), "residents": pytest.approx(0.1)}

    suspended = stewards.suspend(store, people.health, "medical_visits", "records under correction",
                                 agreement_id=agreement_id)
    assert [p["suspended"] for p in suspended] == [True]
    with pytest.raises(AgreementInactive, match="suspended the use of medical_visits") as refused:
        run(service, people.developer, agreement_id, epsilon=0.2)
    assert refused.value.fields["status"] == "suspended"
    # the other department's data is still usable under the same agreement
    assert run(service, people.developer, agreement_id, sql=RESIDENTS_ONLY)["status"] == "released"
    stewards.resume(store, people.health, "medical_visits", "corrected", agreement_id=agreement_id)
    assert run(service, people.developer, agreement_id, epsilon=0.2)["status"] == "released"

    found, _ = audit.search(store, audit.AuditFilter(agreement_id=agreement_id), limit=100, newest_first=False)
    events = [(e["action"], e["actor"], e["dataset"]) for e in found
              if e["action"].startswith(("agreement.", "dataset."))]
    assert events == [
        ("agreement.requested", people.developer.id, None),
        ("agreement.approved", people.operator.id, None),
        ("dataset.approved", people.police.id, "residents"),
        ("dataset.approved", people.health.id, "medical_visits"),
        ("agreement.activated", None, None),
        ("dataset.suspended", people.health.id, "medical_visits"),
        ("dataset.resumed", people.health.id, "medical_visits"),
    ]
    assert audit.verify(store).ok


def test_a_stewards_budget_for_their_dataset_bounds_the_agreement(store: Store, demo_catalog, service) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    stewards.approve(store, people.police, agreement_id, "residents")
    stewards.approve(store, people.health, agreement_id, "medical_visits", epsilon=0.3)
    assert agreements.approve(store, people.operator, agreement_id)["status"] == "active"  # stewards first
    run(service, people.developer, agreement_id, epsilon=0.2)
    with pytest.raises(BudgetExhausted, match="medical_visits") as refused:
        run(service, people.developer, agreement_id, epsilon=0.15)
    assert refused.value.fields["remaining_epsilon"] == pytest.approx(0.1)
    assert agreements.get(store, people.developer, agreement_id)["spent_epsilon"] == pytest.approx(0.2)
    # residents alone are not bound by the health steward's budget
    run(service, people.developer, agreement_id, sql=RESIDENTS_ONLY, epsilon=0.5)
    assert audit.verify(store).ok


def test_a_stewards_output_rules_bind_every_query_that_reads_their_dataset(store: Store, demo_catalog,
                                                                          service) -> None:
    """The health steward's minimum count and rounding join the policy's and the agreement's
    (strictest wins: the largest minimum, the least common multiple of the roundings) for every
    query that reads medical_visits, and for no other; explain shows them before any spending."""
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    stewards.approve(store, people.police, agreement_id, "residents")
    part = stewards.approve(store, people.health, agreement_id, "medical_visits", min_count=200, round_to=40)
    assert (part["min_count"], part["round_to"]) == (200, 40)
    agreements.approve(store, people.operator, agreement_id)

    def rules(sql: str) -> dict:
        return service.explain(people.developer, sql=sql, epsilon=1.0, delta=None,
                               agreement_id=agreement_id)["output_rules"]

    assert rules(FUSED) == {"min_count": 200, "round_to": 40}  # policy: 10 and 5
    assert rules(RESIDENTS_ONLY) == {"min_count": 10, "round_to": 1}, "residents' own rules only"
    released = run(service, people.developer, agreement_id, epsilon=1.0)["result"]
    visits = released["columns"].index("visits")
    counts = [row[visits] for row in released["rows"] if row[visits] is not None]
    assert counts and all(c % 40 == 0 for c in counts), counts
    found, _ = audit.search(store, audit.AuditFilter(agreement_id=agreement_id, action="dataset.approved"), limit=10)
    health = next(e for e in found if e["dataset"] == "medical_visits")
    assert (health["details"]["min_count"], health["details"]["round_to"]) == (200, 40)


@pytest.mark.parametrize("rules", [{"min_count": 0}, {"round_to": -5}, {"round_to": 10**9}])
def test_a_stewards_output_rules_are_whole_numbers_from_one(store: Store, demo_catalog, rules) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    with pytest.raises(InvalidParameter, match="whole number from 1"):
        stewards.approve(store, people.health, agreement_id, "medical_visits", **rules)


def test_a_refund_gives_each_dataset_its_charge_back(store: Store, demo_catalog) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    for steward, name in ((people.police, "residents"), (people.health, "medical_visits")):
        stewards.approve(store, steward, agreement_id, name, epsilon=1.0)
    agreements.approve(store, people.operator, agreement_id)
    with store.transaction() as conn:
        conn.execute(insert(jobs).values(id="job-1", developer_id=people.developer.id, agreement_id=agreement_id,
                                         sql=FUSED, epsilon=0.4, status="queued", created_at=now()))
        ledger.reserve(conn, agreement_id=agreement_id, job_id="job-1", epsilon=0.4, delta=0,
                       datasets=["medical_visits", "residents"])
    assert [p["spent_epsilon"] for p in stewards.parts(store, agreement_id)] == [0.4, 0.4]  # 0.4e9 units exactly
    with store.transaction() as conn:
        ledger.refund(conn, "job-1")
    assert [p["spent_epsilon"] for p in stewards.parts(store, agreement_id)] == [0.0, 0.0]


def test_a_stewards_rejection_rejects_the_request(store: Store, demo_catalog) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    stewards.approve(store, people.police, agreement_id, "residents")
    stewards.reject(store, people.health, agreement_id, "medical_visits", "no legal basis for health data")
    rejected = agreements.get(store, people.developer, agreement_id)
    assert rejected["status"] == "rejected" and rejected["decision_reason"] == "no legal basis for health data"
    assert rejected["decided_by"] == people.health.id
    with pytest.raises(Conflict):
        agreements.approve(store, people.operator, agreement_id)


def test_an_owner_without_a_steward_is_decided_by_the_operator(store: Store, demo_catalog) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people, datasets={"enterprises": None, "residents": None})
    parts = {p["dataset"]: p["status"] for p in stewards.parts(store, agreement_id)}
    assert parts == {"enterprises": "delegated", "residents": "pending"}
    assert agreements.approve(store, people.operator, agreement_id)["status"] == "awaiting"
    stewards.approve(store, people.police, agreement_id, "residents")
    assert agreements.get(store, people.operator, agreement_id)["status"] == "active"


@pytest.mark.parametrize("who,dataset,error", [
    ("health", "residents", NotFound),  # another organisation's part
    ("operator", "residents", Forbidden),
    ("developer", "residents", Forbidden),
])
def test_only_the_owners_steward_decides_a_part(store: Store, demo_catalog, who, dataset, error) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    with pytest.raises(error):
        stewards.approve(store, getattr(people, who), agreement_id, dataset)
    assert {p["status"] for p in stewards.parts(store, agreement_id)} == {"pending"}


@pytest.mark.parametrize("limits,words", [
    ({"epsilon": 3.0}, "requested epsilon 2"),
    ({"columns": ["no_such_column"]}, "no_such_column are not"),
    ({"columns": []}, "at least one column"),
    ({"valid_to": "2200-01-01"}, "no later than the request's end"),
])
def test_a_steward_may_narrow_never_widen(store: Store, demo_catalog, limits, words) -> None:
    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    with pytest.raises(InvalidParameter, match=words):
        stewards.approve(store, people.health, agreement_id, "medical_visits", known=people.known, **limits)


def test_a_steward_sees_only_agreements_using_their_datasets(store: Store, demo_catalog) -> None:
    people = cast(store, demo_catalog)
    fused = fused_request(store, people)
    residents_only = fused_request(store, people, datasets={"residents": None})
    assert [a["id"] for a in agreements.list_for(store, people.health)] == [fused]
    assert {a["id"] for a in agreements.list_for(store, people.police)} == {fused, residents_only}
    with pytest.raises(NotFound):
        agreements.get(store, people.health, residents_only)
    assert [p["agreement_id"] for p in stewards.queue(store, people.health, status="pending")] == [fused]


def test_suspending_every_agreement_stops_them_all(store: Store, demo_catalog, service) -> None:
    people = cast(store, demo_catalog)
    ids = [fused_request(store, people, datasets={"residents": None}) for _ in range(2)]
    for agreement_id in ids:
        stewards.approve(store, people.police, agreement_id, "residents")
        agreements.approve(store, people.operator, agreement_id)
    assert len(stewards.suspend(store, people.police, "residents", "audit of the registry")) == 2
    for agreement_id in ids:
        with pytest.raises(AgreementInactive, match="suspended"):
            run(service, people.developer, agreement_id, sql=RESIDENTS_ONLY)
    with pytest.raises(Conflict):
        stewards.suspend(store, people.police, "residents", "again", agreement_id=ids[0])
    assert len(stewards.resume(store, people.police, "residents", "audit done")) == 2


def test_a_dataset_parts_spending_is_held_to_its_audit_events(store: Store, demo_catalog, service) -> None:
    """`verify` adds up each part's charges from the submissions' events: a part whose spending
    was set back in the database (to slip past the steward's budget) is named."""
    from sqlalchemy import update

    from sandbox.store.schema import dataset_grants

    people = cast(store, demo_catalog)
    agreement_id = fused_request(store, people)
    stewards.approve(store, people.police, agreement_id, "residents")
    stewards.approve(store, people.health, agreement_id, "medical_visits", epsilon=0.5)
    agreements.approve(store, people.operator, agreement_id)
    run(service, people.developer, agreement_id, epsilon=0.3)
    run(service, people.developer, agreement_id, sql=RESIDENTS_ONLY, epsilon=0.2)
    assert audit.verify(store).ok
    with store.transaction() as conn:
        conn.execute(update(dataset_grants).where(dataset_grants.c.dataset == "medical_visits")
                     .values(spent_epsilon=0))
    result = audit.verify(store)
    assert not result.ok and result.kind == "budget" and result.agreement_id == agreement_id
    assert "dataset medical_visits: the database says epsilon 0 spent, but its audit events charge 0.3" in result.reason
    with store.transaction() as conn:
        conn.execute(update(dataset_grants).where(dataset_grants.c.dataset == "medical_visits")
                     .values(spent_epsilon=300_000_000, budget_epsilon=5_000_000_000))
    raised = audit.verify(store)
    assert not raised.ok and "the database grants epsilon 5, but its steward's approval event grants 0.5" in \
        raised.reason, raised.reason
