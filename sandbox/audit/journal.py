"""The sandbox's own record of the chain it appended, kept outside the database.

The hash chain proves nothing against whoever can write to the database: they can rewrite an
event, recompute every later hash and move the head. Signed checkpoints pin the chain at the
moments they were made; this journal pins every event since the last one. Each append writes
`{"seq", "hash"}` to ``DATA_DIR/audit-journal/<database>.jsonl`` (0600) *before* its transaction
commits, so every committed event the sandbox appended is in it (an event whose transaction
rolled back leaves a harmless extra line: a seq may have several candidate hashes).

The checkpointer signs only events the journal holds with the same hash, and `verify` reports
an event whose hash differs from the journal's, or that the journal should hold and does not.
Server processes that share a database share one data directory, so they share the journal.
After each checkpoint the lines before it are dropped (the witness file keeps the checkpoint).
A data directory's first server on a database that has events but no journal adopts the chain
as it finds it (trust on first use), as it did before there was a journal.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from sandbox.private_files import append_line, locked

__all__ = ["Journal", "Written", "database_key"]

DIRECTORY = "audit-journal"

Written = Mapping[int, frozenset[str]]  # seq -> the hashes the sandbox wrote for it


def database_key(database: str) -> str:
    """A file name for one database: a digest of its URL without the password (a SQLite path is
    resolved first, so `var/sandbox.db` and its absolute path are the same database)."""
    url = make_url(database if "://" in database else f"sqlite:///{Path(database).resolve()}")
    return hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, data_dir: Path, database: str) -> Journal:
        return cls(Path(data_dir) / DIRECTORY / f"{database_key(database)}.jsonl")

    def record(self, seq: int, hashed: str) -> None:
        append_line(self.path, json.dumps({"seq": seq, "hash": hashed}, separators=(",", ":")))

    def read(self) -> dict[int, frozenset[str]]:
        """Every (seq -> hashes) recorded since the last checkpoint; empty if nothing yet."""
        if not self.path.exists():
            return {}
        with locked(self.path, exclusive=False) as fd:
            text = _read_all(fd)
        written: dict[int, set[str]] = {}
        for line in text.splitlines():
            if line.strip():
                entry = json.loads(line)
                written.setdefault(int(entry["seq"]), set()).add(entry["hash"])
        return {seq: frozenset(hashes) for seq, hashes in written.items()}

    def forget_before(self, seq: int) -> None:
        """Drop the lines of events before `seq` (a checkpoint signed `seq` and covers them)."""
        if not self.path.exists():
            return
        with locked(self.path, exclusive=True) as fd:
            kept = [line for line in _read_all(fd).splitlines() if line.strip() and json.loads(line)["seq"] >= seq]
            os.ftruncate(fd, 0)
            if kept:
                os.write(fd, ("\n".join(kept) + "\n").encode())


def _read_all(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8")
