"""Page time with 10,000 audit events against an (almost) empty log, side by side.

Server time is measured in-process (the ASGI app, no socket), alternating between the two apps
so that both see the same machine load; medians of repeated requests. The target is 300 ms per
page at 10,000 events; what is asserted is the ratio to the empty log's time (<= 3x), because
absolute times depend on the machine. The numbers are written to tests/output/page-times.txt.

Chain verification and export read every event by design (they are linear); their times are
reported, not compared.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

EVENTS = 10_000
ROUNDS = 21
RATIO = 3.0
REPORT = Path(__file__).resolve().parents[1] / "output" / "page-times.txt"


@pytest.fixture(scope="module")
def pair(console_factory):
    return console_factory(), console_factory(busy=EVENTS)


def _pages(console, event_seq: int) -> list[tuple[str, str, str]]:
    """(label, role, path) of every console page."""
    pp = console.people
    return [
        ("/console/audit", "auditor", "/console/audit"),
        ("/console/audit?action=job.released&offset=2000", "auditor", "/console/audit?action=job.released&offset=2000"),
        ("/console/audit?agreement_id={id}&outcome=ok", "auditor",
         f"/console/audit?agreement_id={pp.active_id}&outcome=ok"),
        ("/console/audit/events/{seq}", "auditor", f"/console/audit/events/{event_seq}"),
        ("/console/audit/charts", "auditor", "/console/audit/charts"),
        ("/console/queue", "operator", "/console/queue"),
        ("/console/agreements/{id}", "operator", f"/console/agreements/{pp.pending_id}"),
        ("/console/licences", "operator", "/console/licences"),
        ("/console/catalog", "operator", "/console/catalog"),
        ("/console/me", "developer", "/console/me"),
    ]


def _time(client, path: str) -> float:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, (path, response.status_code)
    return elapsed


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def test_pages_stay_fast_with_ten_thousand_events(pair) -> None:
    empty, busy = pair
    with busy.store.read() as conn:
        from sqlalchemy import func, select

        from sandbox.store.schema import audit

        assert conn.execute(select(func.count()).select_from(audit)).scalar_one() >= EVENTS
        released = conn.execute(select(func.max(audit.c.seq)).where(audit.c.action == "job.released")).scalar_one()
    clients = {(app, role): console.client(role) for app, console in (("empty", empty), ("busy", busy))
               for role in ("auditor", "operator", "developer")}
    pages = {"empty": _pages(empty, 10), "busy": _pages(busy, released)}
    lines, slow = [], []
    for index in range(len(pages["empty"])):
        samples: dict[str, list[float]] = {"empty": [], "busy": []}
        for round_ in range(ROUNDS + 3):  # three warm-up rounds
            for app in ("empty", "busy") if round_ % 2 else ("busy", "empty"):
                _, role, path = pages[app][index]
                took = _time(clients[(app, role)], path)
                if round_ >= 3:
                    samples[app].append(took)
        e, b = _median_ms(samples["empty"]), _median_ms(samples["busy"])
        label = pages["empty"][index][0]
        lines.append(f"{label:<60} {e:8.1f} ms {b:8.1f} ms {b / e:6.2f}x")
        if b / e > RATIO:
            slow.append(lines[-1])
    for path in ("/console/audit?verify=1", "/console/audit/export?format=csv"):
        e = _median_ms([_time(clients[("empty", "auditor")], path) for _ in range(3)])
        b = _median_ms([_time(clients[("busy", "auditor")], path) for _ in range(3)])
        lines.append(f"{path + ' (linear, not compared)':<60} {e:8.1f} ms {b:8.1f} ms {b / e:6.2f}x")
    header = f"{'page':<60} {'~20 events':>11} {f'{EVENTS:,} events':>14} {'ratio':>7}"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("median server time per page (in-process ASGI, "
                      f"{ROUNDS} alternating requests)\n{header}\n" + "\n".join(lines) + "\n")
    print("\n" + REPORT.read_text())
    assert not slow, f"pages more than {RATIO}x slower with {EVENTS:,} events:\n" + "\n".join(slow)
