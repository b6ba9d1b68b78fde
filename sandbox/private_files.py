"""Files only the sandbox's own OS user may read: the metadata database, keys, the audit records.

The data directory holds every developer's SQL, every release, the audit log and the keys, so
what the sandbox creates there is owner-only: directories 0700, files 0600, whatever the umask.
Files that several server processes may create at the same moment (a key on first start) are
written to a private temporary file and linked into place: exactly one version wins, and nobody
reads a half-written file.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["append_line", "create_once", "locked", "private_dir", "private_file"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) owner-only; tighten it if it is open to others."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists owner-only (0600) in an owner-only directory, without truncating it."""
    path = Path(path)
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(FILE_MODE)
    return path


def create_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of `path`, creating it with `make()` if it does not exist. Concurrent creators
    agree on one content: the first link wins, the others read the winner's file."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(make())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won: use its content
    finally:
        os.unlink(temporary)
    return path.read_bytes()


@contextmanager
def locked(path: Path, *, exclusive: bool) -> Iterator[int]:
    """An open file descriptor of `path` (created 0600) under a shared or exclusive flock: many
    appenders share, one rewriter excludes them (locks are per open file, across processes)."""
    private_dir(Path(path).parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def append_line(path: Path, line: str) -> None:
    """Append one line in a single write (appenders interleave whole lines)."""
    with locked(path, exclusive=False) as fd:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
