"""Signed checkpoints of the audit log: what the hash chain alone cannot prove.

The chain (chain.py) shows that no event was changed *unless the whole chain was recomputed*:
anyone who can write to the database can rewrite an event, re-hash every later one and move the
head, or cut the log short and move the head back. A checkpoint closes that gap. It is

    checkpoint n = (n, seq, hash, ts, prev, key_id) + Ed25519 signature

over ``MESSAGE_PREFIX + canonical_json(fields)``, where `hash` is the chain's hash at event `seq`,
`prev` = sha256(message + signature of checkpoint n - 1) (64 zeros for the first), and the key is
the server's, in ``DATA_DIR/audit-signing.key`` (0600), never in the database. A rewritten history
no longer matches a signed hash; a truncated log ends before a signed seq; a forged checkpoint
does not verify; a deleted one breaks the `prev` links, or is still in the witness file the
server appends every checkpoint to, next to its key (``DATA_DIR/audit-checkpoints/<db>.jsonl``),
or in the copy an auditor exported (``GET /audit/checkpoints``, ``sandbox audit checkpoints``).

What is signed: only events the sandbox appended itself. Before signing, the events since the
last checkpoint are walked (chain.walk) and compared with the server's journal (journal.py): the
newest event up to which every event is in the journal with the same hash is signed, and a
divergence (an event rewritten and re-hashed after the last checkpoint, or one the sandbox never
appended) is reported, never signed. Without that, the next periodic checkpoint would vouch for
a history rewritten since the last one.

When: the service signs on its own, because auditors change nothing. A background thread signs
once `checkpoint_every_events` events have been appended since the last checkpoint, or
`checkpoint_every_seconds` after it if the head has moved at all, and at start-up and shutdown.
``sandbox audit checkpoint`` signs on demand on the server's host. The trust is in the key;
someone who can read the data directory can sign, so auditors who keep exported checkpoints and
the public key (its `key_id`) keep an anchor outside both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from sandbox.audit.chain import GENESIS, ChainBroken, Link, canonical, head, walk
from sandbox.audit.journal import DIRECTORY as JOURNAL_DIR
from sandbox.audit.journal import Journal, Written, database_key
from sandbox.private_files import append_line, create_once
from sandbox.store import Database, Store, now, reading
from sandbox.store.schema import audit_checkpoints, audit_head

__all__ = [
    "ALGORITHM",
    "MESSAGE_PREFIX",
    "Checkpointer",
    "Signer",
    "Trust",
    "create",
    "export",
    "load_export",
    "message",
    "sign",
]

log = logging.getLogger("sandbox.checkpoints")

ALGORITHM = "Ed25519"
MESSAGE_PREFIX = "xm-sandbox audit checkpoint v1\n"
KEY_FILE = "audit-signing.key"
WITNESS_DIR = "audit-checkpoints"
FIELDS = ("n", "seq", "hash", "ts", "prev", "key_id")


# -- keys --------------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key, hex: what auditors write down and compare."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_pem(text: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class Signer:
    """The server's checkpoint key: created once per data directory (0600), never exported;
    its public half is (`public`, `key_id`, `public_pem`)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)
        self.public_pem = public_pem(self.public)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Signer:
        """Servers starting together on one data directory end up with one key (private_files)."""
        path = Path(data_dir) / KEY_FILE
        key = serialization.load_pem_private_key(create_once(path, _new_key), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    @classmethod
    def load(cls, data_dir: Path) -> Signer | None:
        """The key if this data directory has one (verifying must not create a key)."""
        return cls.load_or_create(data_dir) if (Path(data_dir) / KEY_FILE).exists() else None

    def sign(self, fields: Mapping[str, Any]) -> str:
        return self._private.sign(message(fields)).hex()

    def sign_bytes(self, data: bytes) -> str:
        """A signature (hex) over other documents the sandbox vouches for (data asset certificates)."""
        return self._private.sign(data).hex()


def _new_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# -- checkpoints -------------------------------------------------------------------------------


def message(fields: Mapping[str, Any]) -> bytes:
    """The signed bytes: a fixed prefix and the canonical JSON of the checkpoint's fields."""
    return (MESSAGE_PREFIX + canonical({name: fields[name] for name in FIELDS})).encode("utf-8")


def link(checkpoint: Mapping[str, Any]) -> str:
    """`prev` of the next checkpoint."""
    return hashlib.sha256(message(checkpoint) + checkpoint["signature"].encode()).hexdigest()


def _row(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in (*FIELDS, "signature")}


def stored(conn: Connection) -> list[dict[str, Any]]:
    return [_row(r) for r in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.n))]


def _last(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.n.desc()).limit(1)).first()
    return _row(row) if row is not None else None


def sign(store: Store, signer: Signer, *, witness: Path | None = None,
         journal: Journal | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Sign the newest event since the last checkpoint that the sandbox appended itself (see the
    module docstring). Returns the new checkpoint (None: nothing to sign, or another process
    signed meanwhile) and what stopped it from signing further (None: nothing did). The walk
    runs outside the write lock; only the insert takes it. Without a journal every event counts
    as the sandbox's own; with an empty one, the chain found is adopted (trust on first use)."""
    with store.read() as conn:
        last = _last(conn)
        top = head(conn)
        since = (last["seq"], last["hash"]) if last else (0, GENESIS)
        if top.seq <= since[0]:
            return None, None
        written = journal.read() if journal else {}  # after the head: every event up to it is in it
        try:
            target, problem = _signable(walk(conn, since, top.seq), written)
        except ChainBroken as broken:
            return None, f"event {broken.seq} does not check out: {broken.reason} (run `sandbox audit verify`)"
    checkpoint = _insert(store, signer, last, target) if target is not None else None
    if checkpoint is not None:
        if witness is not None:
            append_line(witness, canonical(dict(checkpoint)))
        if journal is not None:
            if not written:
                journal.record(target.seq, target.hash)  # adopted: the journal starts here
            journal.forget_before(target.seq)
    return checkpoint, problem


def create(store: Store, signer: Signer, *, witness: Path | None = None,
           journal: Journal | None = None) -> dict[str, Any] | None:
    """`sign`, logging what stopped it. Given only the witness file, the journal beside it is used
    (the two live in the same data directory, under the same database key)."""
    if journal is None and witness is not None:
        journal = Journal(witness.parent.parent / JOURNAL_DIR / witness.name)
    checkpoint, problem = sign(store, signer, witness=witness, journal=journal)
    if problem:
        log.error("audit events not signed: %s", problem)
    return checkpoint


def _signable(links: Iterator[Link], written: Written) -> tuple[Link | None, str | None]:
    """The newest link up to which every event is one the sandbox wrote, and what comes after."""
    target = None
    for link in links:
        hashes = written.get(link.seq) if written else frozenset({link.hash})
        if not hashes:
            return target, (f"event {link.seq} was not appended by the sandbox: it is not in the sandbox's own "
                            "record of the events it appended (its journal)")
        if link.hash not in hashes:
            return target, (f"event {link.seq} is not the event the sandbox appended (its hash differs from the "
                            f"sandbox's journal): events from {link.seq} on were rewritten and re-hashed")
        target = link
    return target, None


def _insert(store: Store, signer: Signer, last: dict[str, Any] | None, target: Link) -> dict[str, Any] | None:
    try:
        with store.transaction() as conn:
            conn.execute(select(audit_head.c.id).where(audit_head.c.id == 1).with_for_update())
            if _last(conn) != last:
                return None  # someone else signed meanwhile; the next tick looks again
            fields = {
                "n": (last["n"] + 1) if last else 1,
                "seq": target.seq,
                "hash": target.hash,
                "ts": now(),
                "prev": link(last) if last else GENESIS,
                "key_id": signer.key_id,
            }
            checkpoint = fields | {"signature": signer.sign(fields)}
            conn.execute(insert(audit_checkpoints).values(**checkpoint))
    except IntegrityError:  # the same n from another process
        return None
    return checkpoint


def witness_path(data_dir: Path, database_url: str) -> Path:
    """Where this server keeps its copies of the checkpoints it signed for this database (one
    file per database, named by a digest of its URL without the password)."""
    return Path(data_dir) / WITNESS_DIR / f"{database_key(database_url)}.jsonl"


def read_witness(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- export and trust --------------------------------------------------------------------------


def export(db: Database, signer: Signer | None) -> dict[str, Any]:
    """Everything an auditor needs to check the log later without trusting this server again."""
    with reading(db) as conn:
        signed = stored(conn)
    return {
        "algorithm": ALGORITHM,
        "key_id": signer.key_id if signer else None,
        "public_key": signer.public_pem if signer else None,
        "message": "Ed25519 over MESSAGE_PREFIX + canonical JSON (sorted keys, no spaces) of n, seq, hash, ts, "
                   "prev, key_id; prev = sha256(message + signature hex) of the previous checkpoint",
        "message_prefix": MESSAGE_PREFIX,
        "checkpoints": signed,
    }


def load_export(document: Mapping[str, Any]) -> Trust:
    """An exported checkpoint file as anchors, trusted under the public key it carries (the one
    the auditor wrote down when exporting it)."""
    public = load_public_pem(document["public_key"])
    return Trust({key_id(public): public}, list(document.get("checkpoints", ())))


@dataclass(frozen=True)
class Trust:
    """What a verifier trusts from outside the database: public keys by key id, anchors
    (checkpoints kept elsewhere: the server's witness file, an auditor's export) and the
    server's journal of the events it appended since the last checkpoint (read by `verify`
    once its snapshot of the database is taken, so every event in the snapshot is in it)."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    anchors: Sequence[Mapping[str, Any]] = ()
    journal: Journal | None = None

    @classmethod
    def of(cls, signer: Signer | None, anchors: Iterable[Mapping[str, Any]] = (),
           journal: Journal | None = None) -> Trust:
        return cls({signer.key_id: signer.public} if signer else {}, list(anchors), journal)

    @classmethod
    def of_server(cls, data_dir: Path, database: str) -> Trust:
        """What the server keeps in its data directory for `database`: its key (if it has one),
        its witness file of checkpoints and its journal."""
        return cls.of(Signer.load(data_dir), read_witness(witness_path(data_dir, database)),
                      Journal.of(data_dir, database))

    def __add__(self, other: Trust) -> Trust:
        return Trust({**self.keys, **other.keys}, [*self.anchors, *other.anchors], self.journal or other.journal)


@dataclass(frozen=True)
class Finding:
    """The first checkpoint that does not check out: the events it implicates and why."""

    first_bad_seq: int | None
    events: int
    reason: str


def check(
    rows: Sequence[Mapping[str, Any]], chain: Mapping[int, str], last_seq: int, trust: Trust | None
) -> tuple[list[Mapping[str, Any]], Finding | None]:
    """Check the stored checkpoints `rows` (and the trusted anchors) against the verified chain.

    `chain` maps the seq of every checkpoint to the chain's hash there (for seqs it reached);
    `last_seq` is where the verified chain ends. Returns the good checkpoints and the first
    finding. Without keys (`trust` None), signatures are not checked, hashes and links are.
    """
    keys = trust.keys if trust else {}
    by_n = {c["n"]: c for c in rows}
    good: list[Mapping[str, Any]] = []
    prev, prev_seq, prev_ts = GENESIS, 0, ""
    for expected, checkpoint in enumerate(rows, start=1):
        n, seq = checkpoint["n"], checkpoint["seq"]
        where = f"checkpoint {n} (event {seq}, signed {checkpoint['ts']})"
        if n != expected:
            return good, Finding(None, last_seq, f"checkpoint {expected} is missing from the database (next is {n})")
        if checkpoint["prev"] != prev or seq <= prev_seq or checkpoint["ts"] < prev_ts:
            return good, Finding(None, last_seq, f"{where} does not follow checkpoint {n - 1}: the checkpoints "
                                                 "were changed, removed or reordered")
        if keys:
            problem = _signature_problem(checkpoint, keys)
            if problem:
                return good, Finding(None, last_seq, f"{where}: {problem}")
        finding = _against_chain(checkpoint, where, chain, last_seq, prev_seq)
        if finding:
            return good, finding
        good.append(checkpoint)
        prev, prev_seq, prev_ts = link(checkpoint), seq, checkpoint["ts"]
    for anchor in trust.anchors if trust else ():
        where = f"checkpoint {anchor['n']} (event {anchor['seq']}, signed {anchor['ts']}) kept outside the database"
        problem = _signature_problem(anchor, keys)
        if problem:
            return good, Finding(None, last_seq, f"{where}: {problem}")
        finding = _against_chain(anchor, where, chain, last_seq, _anchored_before(good, anchor["seq"]))
        if finding:
            return good, finding
        if by_n.get(anchor["n"], {}).get("signature") != anchor["signature"]:
            return good, Finding(None, last_seq, f"{where} is missing from the database, or differs there: "
                                                 "the checkpoints were rewritten")
    return good, None


def _anchored_before(good: Sequence[Mapping[str, Any]], seq: int) -> int:
    return max((c["seq"] for c in good if c["seq"] < seq), default=0)


def _against_chain(
    checkpoint: Mapping[str, Any], where: str, chain: Mapping[int, str], last_seq: int, anchored: int
) -> Finding | None:
    seq = checkpoint["seq"]
    if seq > last_seq:
        return Finding(last_seq + 1, last_seq, f"the log ends at event {last_seq}, but {where} covers events up to "
                                               f"{seq}: events were removed and the head moved back")
    if chain.get(seq) != checkpoint["hash"]:
        return Finding(anchored + 1, anchored, f"the chain's hash at event {seq} is not the one signed in {where}: "
                                               f"events {anchored + 1} to {seq} were rewritten and re-hashed")
    return None


def _signature_problem(checkpoint: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    public = keys.get(checkpoint["key_id"])
    if public is None:
        return (f"signed by key {checkpoint['key_id'][:16]}…, which is not a trusted key "
                f"({', '.join(k[:16] + '…' for k in keys) or 'none'})")
    try:
        public.verify(bytes.fromhex(checkpoint["signature"]), message(checkpoint))
    except (InvalidSignature, ValueError):
        return "its signature does not verify: it was not signed by the sandbox's key"
    return None


# -- when to sign ------------------------------------------------------------------------------


class Checkpointer:
    """Signs the head in the background: after `every_events` new events or `every_seconds`
    since the last checkpoint (if the head moved), at start and at stop. One per server process;
    processes sharing a database sign in turn (the checkpoint number is the primary key)."""

    def __init__(
        self, store: Store, signer: Signer, *, every_events: int, every_seconds: float,
        witness: Path | None = None, journal: Journal | None = None, poll_seconds: float = 1.0,
    ) -> None:
        self.store, self.signer, self.witness, self.journal = store, signer, witness, journal
        self.every_events, self.every_seconds, self.poll_seconds = every_events, every_seconds, poll_seconds
        self.problem: str | None = None  # what stopped the last signing, reported once per change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self) -> bool:
        with self.store.read() as conn:
            top = head(conn).seq
            last = _last(conn)
        if last is None:
            return top > 0
        if top <= last["seq"]:
            return False
        if top - last["seq"] >= self.every_events:
            return True
        signed = datetime.strptime(last["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        return (datetime.now(UTC) - signed).total_seconds() >= self.every_seconds

    def tick(self, *, force: bool = False) -> dict[str, Any] | None:
        if not (force or self.due()):
            return None
        checkpoint, problem = sign(self.store, self.signer, witness=self.witness, journal=self.journal)
        if problem and problem != self.problem:
            log.error("audit events not signed: %s", problem)
        self.problem = problem
        return checkpoint

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.tick()
            except Exception:  # a failed tick (database busy, ...) must not end the thread
                log.exception("audit checkpoint failed; trying again")

    def start(self) -> None:
        if self._thread is not None:
            return
        self._safe_tick()
        self._thread = threading.Thread(target=self._loop, name="sandbox-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and sign whatever it has not signed yet (only if it was started)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._safe_tick()

    def _safe_tick(self) -> None:
        try:
            self.tick(force=True)
        except Exception:
            log.exception("audit checkpoint failed")
