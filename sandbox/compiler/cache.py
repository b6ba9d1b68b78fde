"""Plans compiled before, kept per process: a query asked again (a notebook cell re-run, a
dashboard, the service answering the same SQL under the same agreement) skips the compiler's
1-2 ms (some 4 ms after the machine sat idle) and goes straight to the worker.

A plan is a pure function of the query's text, its parameters and the catalog's datasets (the
compiler reads nothing else: no clock, no settings, no data). So an entry is keyed by everything
`compile_query` is given and the catalog it was compiled against, and used only while that
catalog has registered nothing since (`Catalog.generation`): after a registration, or with a new
`Catalog` object, plans are compiled afresh. Refusals are not kept (they are cheap, and their
text may name what the catalog holds). Plans are frozen dataclasses and nothing mutates one after
compiling; sharing them is safe for that reason.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.catalog import Catalog
    from sandbox.compiler.plan import Plan

__all__ = ["PlanCache", "PLANS"]

SIZE = 256  # a plan is a few kB; the compile it saves is 1-4 ms


class PlanCache:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self.enabled = True
        self._entries: OrderedDict[Hashable, tuple[Plan, weakref.ref[Catalog], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, catalog: Catalog) -> Plan | None:
        if not self.enabled or getattr(catalog, "generation", None) is None:
            return None  # a catalog that does not count its registrations is never cached against
        with self._lock:
            entry = self._entries.get((id(catalog), key))
            if entry is None:
                return None
            plan, compiled_against, generation = entry
            if compiled_against() is not catalog or generation != catalog.generation:
                del self._entries[(id(catalog), key)]  # registered since, or another catalog at that id
                return None
            self._entries.move_to_end((id(catalog), key))
            return plan

    def put(self, key: Hashable, catalog: Catalog, generation: int | None, plan: Plan) -> None:
        """Keep `plan`, compiled against `catalog` as it was at `generation` (read before
        compiling: a registration during the compile leaves an entry that is never used)."""
        if not self.enabled or generation is None:
            return
        with self._lock:
            self._entries[(id(catalog), key)] = (plan, weakref.ref(catalog), generation)
            self._entries.move_to_end((id(catalog), key))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Compile every time (a compile-time benchmark; a test that changes the compiler)."""
        before, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = before


PLANS = PlanCache()
