"""The metadata schema (SQLAlchemy Core: one definition for SQLite and PostgreSQL).

Timestamps are ISO-8601 UTC text of fixed width, so they sort and compare as text on every
backend and hash identically in the audit chain. Privacy amounts are integers in fixed units
(nano-epsilon, atto-delta): budget arithmetic is exact and compare-and-set is a plain UPDATE.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

EPSILON_UNIT = 10**9  # stored epsilon = ceil(epsilon * 1e9)
DELTA_UNIT = 10**18  # stored delta = ceil(delta * 1e18)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

users = Table(
    "users", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", String(32), nullable=False),
    # A data steward's organisation: the `owner` of the dataset policies they decide for
    # (NULL for every other role).
    Column("organisation", String(200), nullable=True),
)

licences = Table(
    "licences", metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("organisation", String(200), nullable=False),
    Column("licence_number", String(100), nullable=False, unique=True),
    Column("valid_from", String(32), nullable=False),
    Column("valid_to", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_by", String(36), nullable=False),
    Column("created_at", String(32), nullable=False),
    # The operator's reason for the licence's last suspension or reinstatement (told to a
    # suspended developer; the audit log keeps every one).
    Column("status_reason", Text, nullable=True),
)

agreements = Table(
    "agreements", metadata,
    Column("id", String(36), primary_key=True),
    Column("developer_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("datasets", Text, nullable=False),  # JSON: {dataset: [columns] | null for all}
    Column("valid_from", String(32), nullable=False),
    Column("valid_to", String(32), nullable=False),
    Column("requested_epsilon", Float, nullable=False),
    Column("requested_delta", Float, nullable=False),
    Column("budget_epsilon", BigInteger, nullable=False, default=0),
    Column("budget_delta", BigInteger, nullable=False, default=0),
    Column("spent_epsilon", BigInteger, nullable=False, default=0),
    Column("spent_delta", BigInteger, nullable=False, default=0),
    Column("per_query_epsilon", Float, nullable=True),
    Column("min_count", Integer, nullable=False, default=0),
    Column("round_to", Integer, nullable=False, default=1),
    # The last operator decision (approve, reject, revoke, amend): who, why, when.
    Column("decided_by", String(36), nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("decided_at", String(32), nullable=True),
    # The scope as the developer asked for it (JSON like `datasets`): an amendment may widen the
    # agreement's scope up to it, never beyond.
    Column("requested_datasets", Text, nullable=True),
    Index("agreements_decided", "decided_at"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(36), primary_key=True),
    Column("developer_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("agreement_id", String(36), ForeignKey("agreements.id"), nullable=True),
    Column("dataset", String(100), nullable=True),
    Column("sql", Text, nullable=False),
    Column("compiled_sql", Text, nullable=True),
    Column("cache_key", String(64), nullable=True),
    Column("epsilon", Float, nullable=False),
    Column("delta", Float, nullable=True),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),  # JSON of the error's wire shape
    Column("result", Text, nullable=True),  # JSON of the release
    Column("result_hash", String(64), nullable=True),
    Column("charge_epsilon", BigInteger, nullable=False, default=0),
    Column("charge_delta", BigInteger, nullable=False, default=0),
    Column("reused_from", String(36), nullable=True),
    Column("data_touched", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("started_at", String(32), nullable=True),
    Column("finished_at", String(32), nullable=True),
    # The server process that runs a queued or running job, and until when its claim holds: it
    # renews the lease while alive; another process settles the job once the lease has expired.
    Column("owner", String(120), nullable=True),
    Column("lease_until", String(32), nullable=True),
    # The contribution bounds the query asked for (JSON; NULL: the policies' ceilings).
    Column("contribution", Text, nullable=True),
    Index("jobs_developer", "developer_id", "created_at"),
    Index("jobs_cache", "agreement_id", "cache_key", "status"),
    Index("jobs_idempotency", "developer_id", "idempotency_key", unique=True),
    Index("jobs_active", "status", "lease_until"),
)

ledger = Table(
    "ledger", metadata,
    Column("job_id", String(36), ForeignKey("jobs.id"), primary_key=True),
    Column("agreement_id", String(36), ForeignKey("agreements.id"), nullable=False),
    Column("epsilon", BigInteger, nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),  # reserved -> committed | refunded
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    # JSON list of the private datasets whose part of the agreement the reservation was charged to
    # too (dataset_grants.spent_epsilon); a refund gives it back to each.
    Column("datasets", Text, nullable=True),
)

# Each private dataset's part of an agreement (sandbox/stewards.py): its owner's data steward
# approves or rejects it, possibly with narrower limits (a budget for this dataset, fewer
# columns, an earlier end), and may suspend it. `status`: pending (a steward must decide),
# approved, rejected, or delegated (the owner had no steward when the request was made: the
# operator's decision stands for it). Budgets in store units, like the agreement's.
dataset_grants = Table(
    "dataset_grants", metadata,
    Column("agreement_id", String(36), ForeignKey("agreements.id"), primary_key=True),
    Column("dataset", String(100), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("budget_epsilon", BigInteger, nullable=True),  # NULL: the agreement's budget only
    Column("spent_epsilon", BigInteger, nullable=False, default=0),
    Column("columns", Text, nullable=True),  # JSON list, NULL: the agreement's columns
    Column("valid_to", String(32), nullable=True),  # NULL: the agreement's end
    Column("min_count", Integer, nullable=True),  # NULL: the agreement's and the policy's output rules
    Column("round_to", Integer, nullable=True),
    Column("decided_by", String(36), nullable=True),
    Column("decided_at", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("suspended_at", String(32), nullable=True),  # NULL: in force
    Column("suspended_by", String(36), nullable=True),
    Column("suspend_reason", Text, nullable=True),
    Index("dataset_grants_owner", "owner", "status"),
)

audit = Table(
    "audit", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(32), nullable=False),
    Column("actor", String(36), nullable=True),
    Column("role", String(20), nullable=True),
    Column("action", String(60), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("agreement_id", String(36), nullable=True),
    Column("dataset", String(100), nullable=True),
    Column("job_id", String(36), nullable=True),
    Column("details", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("audit_actor", "actor", "seq"),
    Index("audit_agreement", "agreement_id", "seq"),
    Index("audit_action", "action", "seq"),
    Index("audit_job", "job_id", "seq"),
    Index("audit_ts", "ts"),
)

# One row; appends lock it (SELECT ... FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), so
# the chain has a single writer at a time and its head is recorded next to the events.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Signed audit checkpoints (sandbox/checkpoints.py): checkpoint n attests that event `seq` had
# hash `hash` at `ts`; `prev` chains it to checkpoint n - 1, and `signature` (Ed25519, hex) is
# made with the server's key in DATA_DIR, which is not in this database.
audit_checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("n", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("prev", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)

# Console sessions (sandbox/accounts.py): the cookie holds a random session id, the database only
# its SHA-256; a session ends at `expires_at` or when its user signs out (`ended_at`).
console_sessions = Table(
    "console_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("ended_at", String(32), nullable=True),
)
