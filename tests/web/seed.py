"""People, agreements and a busy audit log for the console tests. People and agreements are made
with the service's own functions (accounts, agreements); the busy log is written in bulk, chained
the way `audit.append` chains, and verified by the tests."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from sandbox import accounts, agreements, audit
from sandbox.accounts import User
from sandbox.errors import BudgetExhausted, SQLRejected
from sandbox.store import Store, now
from sandbox.store.schema import EPSILON_UNIT, audit_head, jobs
from sandbox.store.schema import agreements as agreements_table
from sandbox.store.schema import audit as audit_table
from sandbox.store.schema import ledger as ledger_table
from sandbox.store.units import charge_units

ALL = None  # every queryable column of a dataset


@dataclass(frozen=True)
class People:
    tokens: dict[str, str]  # admin, operator, auditor, developer, developer2
    users: dict[str, User]
    active_id: str  # Lin Wei's approved agreement (residents)
    pending_id: str  # Lin Wei's request, waiting for a decision
    other_pending_id: str  # Zhang Hui's request


def people(store: Store, known: dict[str, set[str]]) -> People:
    """An operator, an auditor and two licensed developers; one approved agreement and two requests."""
    with store.transaction() as conn:
        admin, admin_token = accounts.create_user(conn, "Administrator", "admin")
        operator, operator_token = accounts.create_user(conn, "Chen Jing", "operator", by=admin)
        auditor, auditor_token = accounts.create_user(conn, "Huang Min", "auditor", by=admin)
        _, lin, lin_token = accounts.create_licence(
            conn, operator, name="Lin Wei", organisation="Xiamen University, School of Public Health",
            licence_number="XM-2026-0042", valid_from="2026-01-01", valid_to="2031-01-01")
        _, zhang, zhang_token = accounts.create_licence(
            conn, operator, name="Zhang Hui", organisation="Amoy Transport Research Institute",
            licence_number="XM-2026-0107", valid_from="2026-03-01", valid_to="2029-03-01")
        active = agreements.request(
            conn, lin, purpose="Household income by district", legal_basis="Xiamen Municipal Data Regulation, art. 34",
            datasets={"residents": ["district", "age", "monthly_income", "household_size"]},
            valid_from="2026-01-01", valid_to="2030-12-31", epsilon=3.0, delta=1e-6, known=known)
        agreements.approve(conn, operator, active["id"], epsilon=2.0, per_query_epsilon=0.5,
                           reason="Granted 2.0 of 3.0: first agreement of this team")
        pending = agreements.request(
            conn, lin, purpose="Health-care use by age and district",
            legal_basis="Public health research, ethics approval XMU-2026-117",
            datasets={"medical_visits": ALL, "residents": ["district", "age"]},
            valid_from="2026-06-01", valid_to="2029-06-01", epsilon=4.0, delta=1e-6, known=known)
        other = agreements.request(
            conn, zhang, purpose="Enterprise size by industry and district", legal_basis="Transport planning mandate",
            datasets={"enterprises": ALL}, valid_from="2026-04-01", valid_to="2028-04-01", epsilon=2.0, delta=0.0,
            known=known)
    return People(
        tokens={"admin": admin_token, "operator": operator_token, "auditor": auditor_token, "developer": lin_token,
                "developer2": zhang_token},
        users={"admin": admin, "operator": operator, "auditor": auditor, "developer": lin, "developer2": zhang},
        active_id=active["id"], pending_id=pending["id"], other_pending_id=other["id"])


CHARGE = 0.0002  # epsilon per seeded job: 10,000 events spend about 0.9 of the agreement's 2.0

QUERIES = (
    ("residents", "SELECT district, COUNT(*) FROM residents GROUP BY district"),
    ("residents", "SELECT district, AVG(monthly_income) FROM residents GROUP BY district"),
    ("residents", "SELECT FLOOR(age / 10) * 10 AS decade, COUNT(*) FROM residents GROUP BY decade"),
)
REFUSALS = (
    SQLRejected("SELECT *", "it would output rows", "Select aggregates", rule="allowed_nodes"),
    SQLRejected("identifier column 'person_id'", "it identifies people", "Count units with COUNT(DISTINCT person_id)",
                rule="no_identifiers"),
    SQLRejected("MIN", "extremes reveal single rows", "Use a quantile", rule="allowed_nodes"),
    SQLRejected("window function", "it works on rows", "Aggregate with GROUP BY", rule="no_row_level_output"),
    BudgetExhausted("This query needs epsilon 0.5 but 0.1 is left; ask the operator for more budget."),
)


def busy_log(store: Store, pp: People, events: int = 10_000) -> None:
    """Grow the log to `events` events of the kinds a busy sandbox records: jobs submitted and
    released with their charge, and refused queries. Written in bulk (the service's one-at-a-time
    appends would take 20 s for 10,000), chained exactly as `audit.append` chains them: the tests
    check that `audit.verify` accepts the result."""
    developer = pp.users["developer"]
    job_rows: list[dict] = []
    ledger_rows: list[dict] = []
    event_rows: list[dict] = []
    with store.transaction() as conn:
        seq, prev = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()

        def append(action: str, details: dict, outcome: str = "ok", actor: str | None = developer.id,
                   role: str = "developer", **about: str | None) -> None:
            nonlocal seq, prev
            seq += 1
            event = {"seq": seq, "ts": now(), "actor": actor, "role": role, "action": action, "outcome": outcome,
                     "agreement_id": pp.active_id, "dataset": about.get("dataset"), "job_id": about.get("job_id"),
                     "details": json.loads(audit.canonical(details))}
            digest = hashlib.sha256((prev + audit.canonical(event)).encode()).hexdigest()
            event_rows.append(event | {"details": audit.canonical(details), "prev_hash": prev, "hash": digest})
            prev = digest

        charge = charge_units(CHARGE, 0.0)[0]
        i = 0
        while seq < events:
            i += 1
            dataset, sql = QUERIES[i % len(QUERIES)]
            job_id = str(uuid.uuid4())
            base = {"id": job_id, "developer_id": developer.id, "agreement_id": pp.active_id, "dataset": dataset,
                    "sql": sql, "epsilon": CHARGE, "delta": 0.0, "created_at": now(), "finished_at": now(),
                    "compiled_sql": None, "error": None, "result": None, "result_hash": None, "charge_epsilon": 0,
                    "charge_delta": 0, "data_touched": False}  # one shape for every row: a bulk insert
            if i % 5 == 0:
                refusal = REFUSALS[(i // 5) % len(REFUSALS)]
                job_rows.append(base | {"status": "rejected", "error": json.dumps(refusal.to_dict())})
                append("job.rejected", {"sql": sql, "code": refusal.code, "reason": refusal.message},
                       outcome="rejected", job_id=job_id)
                continue
            digest = hashlib.sha256(job_id.encode()).hexdigest()
            job_rows.append(base | {"status": "released", "compiled_sql": f"/* bounded */ {sql}",
                                    "result": json.dumps({"columns": [], "rows": []}), "result_hash": digest,
                                    "charge_epsilon": charge, "charge_delta": 0, "data_touched": True})
            ledger_rows.append({"job_id": job_id, "agreement_id": pp.active_id, "epsilon": charge, "delta": 0,
                                "state": "committed", "created_at": now(), "updated_at": now()})
            append("job.submitted", {"sql": sql, "compiled_sql": f"/* bounded */ {sql}", "epsilon": CHARGE,
                                     "delta": 0.0, "reserved_epsilon": charge / EPSILON_UNIT},
                   dataset=dataset, job_id=job_id)
            append("job.released", {"result_hash": digest, "charge_epsilon": charge / EPSILON_UNIT, "charge_delta": 0.0,
                                    "seconds": 0.01, "accuracy": [{"name": "count", "kind": "aggregate",
                                                                   "function": "count", "primitives": ["count"],
                                                                   "half_width": 11.98}]},
                   actor=None, role="system", dataset=dataset, job_id=job_id)
        conn.execute(insert(jobs), job_rows)
        conn.execute(insert(ledger_table), ledger_rows)
        conn.execute(insert(audit_table), event_rows)
        conn.execute(update(audit_head).values(seq=seq, hash=prev))
        conn.execute(update(agreements_table).where(agreements_table.c.id == pp.active_id).values(
            spent_epsilon=agreements_table.c.spent_epsilon + charge * len(ledger_rows)))
