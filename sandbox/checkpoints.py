"""Moved to `sandbox.audit.checkpoints`; this name stays for the staff CLI until it talks HTTP
only (issue 15). New code imports `from sandbox.audit import checkpoints`."""

from __future__ import annotations

from sandbox.audit.checkpoints import *  # noqa: F403
from sandbox.audit.checkpoints import __all__, create, read_witness, witness_path  # noqa: F401
