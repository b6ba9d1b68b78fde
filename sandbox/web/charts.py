"""Charts as inline SVG, drawn on the server: no script, no fonts or files fetched.

Each chart has a <title> and role="img", and its page shows the same numbers in a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

__all__ = ["Series", "bars", "steps"]

# Distinguishable for the common colour-vision deficiencies (Okabe & Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
WIDTH, LEFT, RIGHT, TOP = 720, 64, 16, 16


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[datetime, float]]  # (time, cumulative value), in time order


def _nice(top: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `top`."""
    if top <= 0:
        return 1.0
    power = 10 ** int(f"{top:e}".split("e")[1])
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= top:
            return step * power
    return 10 * power


def _svg(title: str, height: int, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def _label(stamp: datetime, span: float) -> str:
    return stamp.strftime("%H:%M:%S" if span < 3600 else "%m-%d %H:%M" if span < 3 * 86400 else "%Y-%m-%d")


def steps(series: Sequence[Series], *, title: str, unit: str, until: datetime | None = None,
          empty: str = "Nothing spent yet.") -> Markup:
    """Cumulative step lines over time, one per series, each held at its last value until `until`
    (now), with a legend underneath."""
    plot_h = 220
    legend_h = 20 * len(series) + 8
    height = TOP + plot_h + 36 + legend_h
    body: list[str] = []
    times = [t for s in series for t, _ in s.points]
    if not times:
        body.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle">{escape(empty)}</text>')
        return _svg(title, TOP + plot_h, body)
    t0 = min(times)
    t1 = max(max(times), until or t0)
    span = (t1 - t0).total_seconds() or 60.0
    top = _nice(max(v for s in series for _, v in s.points))
    x_right = WIDTH - RIGHT

    def x(t: datetime) -> float:
        return LEFT + (x_right - LEFT) * ((t - t0).total_seconds() / span)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    for i in range(5):  # horizontal grid and y labels
        v = top * i / 4
        body.append(f'<line x1="{LEFT}" x2="{x_right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                    f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    body.append(f'<text x="12" y="{TOP + plot_h / 2}" transform="rotate(-90 12 {TOP + plot_h / 2})" '
                f'text-anchor="middle">{escape(unit)}</text>')
    for i, stamp in enumerate((t0, t0 + (t1 - t0) / 2, t1) if t1 > t0 else (t0,)):
        anchor = ("start", "middle", "end")[i] if t1 > t0 else "start"
        body.append(f'<text x="{x(stamp):.1f}" y="{TOP + plot_h + 18}" text-anchor="{anchor}">'
                    f'{_label(stamp, span)}{" UTC" if i == 0 else ""}</text>')
    for n, s in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        path = f"M{x(s.points[0][0]):.1f},{y(0):.1f}"
        for i, (t, v) in enumerate(s.points):
            path += f"V{y(v):.1f}"
            end = s.points[i + 1][0] if i + 1 < len(s.points) else t1
            path += f"H{max(x(end), x(t) + 2):.1f}"
        body.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        ly = TOP + plot_h + 36 + 20 * n
        body.append(f'<rect x="{LEFT}" y="{ly}" width="14" height="14" fill="{colour}"/>'
                    f'<text x="{LEFT + 20}" y="{ly + 11}">{escape(s.label)}</text>')
    body.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{y(0):.1f}" stroke="#555"/>'
                f'<line x1="{LEFT}" x2="{x_right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#555"/>')
    return _svg(title, height, body)


def bars(counts: Sequence[tuple[str, int]], *, title: str, empty: str = "No rejected queries.") -> Markup:
    """Horizontal bars, largest first, each labelled with its count."""
    if not counts:
        return _svg(title, 40, [f'<text x="10" y="24">{escape(empty)}</text>'])
    label_w, row = 230, 26
    height = TOP + row * len(counts) + 8
    most = max(n for _, n in counts)
    body: list[str] = []
    for i, (label, n) in enumerate(counts):
        yy = TOP + row * i
        w = (WIDTH - label_w - 70) * n / most
        body.append(f'<text x="{label_w - 8}" y="{yy + 15}" text-anchor="end">{escape(label)}</text>'
                    f'<rect x="{label_w}" y="{yy + 2}" width="{max(w, 1):.1f}" height="18" fill="{PALETTE[1]}"/>'
                    f'<text x="{label_w + w + 6:.1f}" y="{yy + 15}">{n:,}</text>')
    return _svg(title, height, body)
