"""Data asset certificates: each registration of a dataset, signed with the sandbox's Ed25519 key.

A certificate states what was registered, in a form anyone can check offline with the public key
(the audit checkpoints' key, DATA_DIR/audit-signing.key: one key to keep track of):

    dataset, owner, policy_sha256   the policy as registered (canonical JSON of the policy)
    snapshot_sha256                 the managed data file the queries are answered from (its bytes)
    rows, units                     sizes as the catalog already publishes them, never exact counts
    issued_at, version, previous    version n chains to n - 1 by sha256 of its signed message and
                                    signature (64 zeros for the first); every version is kept
    key_id, signature               Ed25519 over MESSAGE_PREFIX + canonical JSON of the fields above

Sizes. An exact count of a small private dataset discloses something, so a certificate carries
only what registration has already made public, at no new privacy cost: `rows` is the size class
(the row count of the engine file rounded up to a power of two, the figure queries are planned
against and the catalog shows), `units` the sum of the rows-per-unit histogram released with the
policy's `metadata_epsilon` (discrete Laplace noise, OpenDP), rounded to two significant digits
(post-processing of a DP release). Without a metadata allowance there is no unit count. Public
reference data (no privacy unit) carries its exact row count.

Versions live in DATA_DIR/certificates/NAME/NNNN.json (the dataset directory itself is replaced
at each re-registration); a registration that changes nothing issues nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from sandbox.audit.chain import canonical
from sandbox.audit.checkpoints import Signer, key_id, load_public_pem

__all__ = ["FIELDS", "MESSAGE_PREFIX", "chain", "digest", "issue", "latest", "message", "verify", "versions"]

MESSAGE_PREFIX = "xm-sandbox data asset certificate v1\n"
FIELDS = ("dataset", "owner", "policy_sha256", "snapshot_sha256", "rows", "units", "size_note", "issued_at",
          "version", "previous", "key_id")
GENESIS = "0" * 64
DIRECTORY = "certificates"


def message(fields: Mapping[str, Any]) -> bytes:
    """The signed bytes: a fixed prefix and the canonical JSON of the certificate's fields."""
    return (MESSAGE_PREFIX + canonical({name: fields[name] for name in FIELDS})).encode("utf-8")


def digest(certificate: Mapping[str, Any]) -> str:
    """`previous` of the next version."""
    return hashlib.sha256(message(certificate) + certificate["signature"].encode()).hexdigest()


def snapshot_sha256(path: Path) -> str:
    """SHA-256 of a managed data file (or of a directory of parts: each part's name and bytes)."""
    sha = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            sha.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()


def _two_digits(value: float) -> int:
    """A non-negative estimate to two significant digits (1234 -> 1200, 87 -> 87, -3 -> 0)."""
    if value <= 0:
        return 0
    step = 10 ** max(int(math.floor(math.log10(value))) - 1, 0)
    return int(round(value / step) * step)


def sizes(dataset: Any) -> tuple[int, int | None, str]:
    """(rows, units, what they are): only figures registration has made public already."""
    if dataset.policy.public:
        return dataset.rows, None, "public data: exact row count; no privacy unit"
    histogram = (dataset.metadata or {}).get("rows_per_unit", {}).get("units")
    units = _two_digits(sum(histogram)) if histogram else None
    note = "rows: the size class (rows of the engine file rounded up to a power of two); units: " + (
        "the noisy rows-per-unit histogram released at registration, summed, two significant digits"
        if units is not None else "not certified (the policy releases no metadata)")
    return dataset.size_bound, units, note


def _directory(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / DIRECTORY / name


def versions(data_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every certificate of a dataset, oldest first."""
    folder = _directory(data_dir, name)
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def latest(data_dir: Path, name: str) -> dict[str, Any] | None:
    found = versions(data_dir, name)
    return found[-1] if found else None


def issue(data_dir: Path, dataset: Any, signer: Signer | None = None) -> dict[str, Any] | None:
    """A new version for the dataset (a catalog.Dataset) as registered now, or None when the latest
    already states it (same policy and snapshot)."""
    signer = signer or Signer.load_or_create(data_dir)
    policy_sha = hashlib.sha256(canonical(dataset.policy.model_dump(mode="json")).encode()).hexdigest()
    snapshot = snapshot_sha256(dataset.parquet_path)
    last = latest(data_dir, dataset.name)
    if last is not None and (last["policy_sha256"], last["snapshot_sha256"]) == (policy_sha, snapshot):
        return None
    rows, units, note = sizes(dataset)
    fields = {"dataset": dataset.name, "owner": dataset.policy.owner, "policy_sha256": policy_sha,
              "snapshot_sha256": snapshot, "rows": rows, "units": units, "size_note": note,
              "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              "version": (last["version"] + 1) if last else 1, "previous": digest(last) if last else GENESIS,
              "key_id": signer.key_id}
    certificate = fields | {"algorithm": "Ed25519", "signature": signer.sign_bytes(message(fields))}
    folder = _directory(data_dir, dataset.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{certificate['version']:04d}.json").write_text(json.dumps(certificate, indent=2, sort_keys=True))
    return certificate


def verify(certificate: Mapping[str, Any], public_pem: str, *, snapshot: Path | None = None,
           previous: Mapping[str, Any] | None = None) -> list[str]:
    """What does not check out (empty: the certificate verifies), offline: the signature under
    `public_pem`, and when given the data file (`snapshot`) and the version before (`previous`)."""
    problems = []
    missing = [name for name in (*FIELDS, "signature") if name not in certificate]
    if missing:
        return [f"fields missing: {', '.join(missing)}"]
    try:
        public = load_public_pem(public_pem)
    except ValueError as exc:
        return [f"the public key does not load ({exc})"]
    if certificate["key_id"] != key_id(public):
        problems.append(f"signed by key {str(certificate['key_id'])[:16]}…, not by the key given "
                        f"({key_id(public)[:16]}…)")
    try:
        public.verify(bytes.fromhex(certificate["signature"]), message(certificate))
    except (InvalidSignature, ValueError):
        problems.append("the signature does not verify: a field was changed after signing, or another key signed it")
    if snapshot is not None and snapshot_sha256(snapshot) != certificate["snapshot_sha256"]:
        problems.append(f"{snapshot} is not the registered snapshot (its SHA-256 differs)")
    if previous is not None and (digest(previous) != certificate["previous"]
                                 or previous.get("version", 0) + 1 != certificate["version"]):
        problems.append("it does not follow the previous certificate given (version or hash chain)")
    return problems


def chain(data_dir: Path, name: str, public_pem: str) -> list[str]:
    """Every version of a dataset's certificates, verified in order; the problems found."""
    problems, before = [], None
    for certificate in versions(data_dir, name):
        problems += [f"version {certificate.get('version')}: {p}"
                     for p in verify(certificate, public_pem, previous=before)]
        if before is None and certificate.get("previous") != GENESIS:
            problems.append("version 1 does not start the chain")
        before = certificate
    return problems
