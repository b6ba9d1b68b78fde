"""Render `peers.json` as `peers.md` (tables, goals met / not met) and `peers_time.png`.

    python -m benchmarks.peers_report            # re-render from benchmarks/results/peers.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["goals", "markdown", "plot", "render", "scaling_markdown"]

LABELS = {
    "duckdb_exact": "DuckDB exact",
    "duckdb_bounded": "DuckDB bounded",
    "engine": "our engine",
    "engine_fresh": "our engine, compiled anew",
    "service": "our service (HTTP)",
    "smartnoise": "SmartNoise SQL",
    "opendp": "OpenDP Polars",
}
ORDER = tuple(LABELS)
PEERS = ("smartnoise", "opendp")


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 10_000:
        return f"{ms / 1e3:,.1f} s"
    return f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _cell(result: dict[str, Any], system: str) -> str:
    stats = result["stats"].get(system)
    if stats is None:
        error = result["errors"].get(system, "")
        word = error.split(":", 1)[0] if error else "-"
        return word
    return f"{_ms(stats['median_s'])} ({_ms(stats['min_s'])}-{_ms(stats['max_s'])})"


def _median(result: dict[str, Any], system: str) -> float | None:
    stats = result["stats"].get(system)
    return stats["median_s"] if stats else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The speed and memory goals of issue 8, each met / not met / not measured."""
    out = []
    if not any(size["rows"] >= 10_000_000 for size in report["sizes"]):
        goal = "10M: engine <= 3x (one row per person: 1.5x) DuckDB exact"
        out.append({"goal": goal, "value": "not run", "met": None})
    for size in report["sizes"]:
        for r in size["results"]:
            engine, exact = _median(r, "engine"), _median(r, "duckdb_exact")
            limit = 1.5 if r["table"] == "people" else 3.0
            if engine and exact and size["rows"] >= 10_000_000:
                out.append(
                    {
                        "goal": f"{size['size']} {r['query']}: engine <= {limit:g}x DuckDB exact",
                        "value": f"{engine / exact:.2f}x",
                        "met": engine / exact <= limit,
                    }
                )
            for peer in PEERS:
                theirs = _median(r, peer)
                if theirs and engine:
                    out.append(
                        {
                            "goal": f"{size['size']} {r['query']}: engine >= 10x faster than {LABELS[peer]}",
                            "value": f"{theirs / engine:.0f}x",
                            "met": theirs / engine >= 10,
                        }
                    )
    limit = report["meta"]["engine_memory_limit_mb"]
    big = [s for s in report["sizes"] if s["rows"] >= 100_000_000]
    if not big:
        out.append({"goal": f"100M: engine worker peak RSS <= {limit} + 500 MiB", "value": "not run", "met": None})
    for size in big:
        peak = max((m for m in size["memory_mib"].get("engine_workers", []) if m), default=None)
        size_limit = size.get("engine_memory_limit_mb", limit)
        out.append(
            {
                "goal": f"{size['size']}: engine worker peak RSS <= {size_limit} + 500 MiB",
                "value": f"{peak:.0f} MiB" if peak else "-",
                "met": peak is not None and peak <= size_limit + 500,
            }
        )
    return out


def _verdict(met: bool | None) -> str:
    return "met" if met else ("not measured" if met is None else "**not met**")


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# Side by side with the peers",
        "",
        f"{meta['date']}, {meta['machine']}, DuckDB {meta['duckdb']}; our engine: {meta['workers']} workers x "
        f"{meta['threads']} threads, memory_limit {meta['engine_memory_limit_mb']} MB (4,096 MB from 10M rows); "
        f"epsilon {meta['epsilon']} "
        f"per query (delta {meta['delta_private_keys']:g} for private keys); {meta['runs']} timed runs per system "
        f"after {meta['warmup']} warm-up round(s) (peers: no warm-up), each after {meta.get('settle_seconds', 0):g} s "
        "idle; load average before/after: "
        f"{', '.join(f'{x:.1f}' for x in meta['load_average_before'])} / "
        f"{', '.join(f'{x:.1f}' for x in meta.get('load_average_after', ()))}.",
        "",
    ]
    for name, env in sorted(report.get("envs", {}).items()):
        if env.get("ok"):
            versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
            lines.append(f"- {LABELS[name]}: own venv `benchmarks/envs/{name}/` ({versions})")
        else:
            lines.append(f"- {LABELS[name]}: **blocked**, pip failed:\n\n```\n{env.get('error', '')[-1500:]}\n```")
    lines.append("")
    for size in report["sizes"]:
        lines += [f"## {size['rows']:,} rows", "", "Median (min-max) per release:", ""]
        systems = [s for s in ORDER if any(s in r["stats"] or s in r["errors"] for r in size["results"])]
        lines.append("| query | " + " | ".join(LABELS[s] for s in systems) + " |")
        lines.append("|---|" + "---|" * len(systems))
        for r in size["results"]:
            lines.append(f"| {r['label']} | " + " | ".join(_cell(r, s) for s in systems) + " |")
        lines += ["", "Ratios of medians (to DuckDB exact; peers to our engine):", ""]
        peers = [p for p in PEERS if p in systems]
        header = ["query", "DuckDB bounded / exact", "engine / exact", "service / exact"]
        header += [f"{LABELS[p]} / exact" for p in peers] + [f"{LABELS[p]} / engine" for p in peers]
        fresh = "engine_fresh" in systems
        header += [f"{LABELS[p]} / engine compiled anew" for p in peers] if fresh else []
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|" + "---|" * (len(header) - 1))
        for r in size["results"]:
            exact, engine = _median(r, "duckdb_exact"), _median(r, "engine")
            cells = [r["label"]] + [_ratio(_median(r, s), exact) for s in ("duckdb_bounded", "engine", "service")]
            cells += [_ratio(_median(r, p), exact) for p in peers] + [_ratio(_median(r, p), engine) for p in peers]
            cells += [_ratio(_median(r, p), _median(r, "engine_fresh")) for p in peers] if fresh else []
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Peak resident memory (VmHWM):", "", "| system | peak RSS |", "|---|---|"]
        memory = size["memory_mib"]
        lines.append(f"| benchmark process (DuckDB exact + bounded, warm) | {_mib(memory.get('duckdb_exact'))} |")
        lines.append(f"| our engine, per worker | {', '.join(_mib(m) for m in memory.get('engine_workers', []))} |")
        if "service" in memory:
            svc = memory["service"]
            kids = ", ".join(_mib(m) for m in svc["children"]) or "-"
            lines.append(f"| our service: server / its workers | {_mib(svc['process'])} / {kids} |")
        for p in PEERS:
            if p in memory:
                lines.append(f"| {LABELS[p]} (whole process, data loaded) | {_mib(memory[p])} |")
        failures: dict[tuple[str, str], list[str]] = {}  # (system, first line of error) -> queries
        for r in size["results"]:
            for system, error in sorted(r["errors"].items()):
                failures.setdefault((system, error.splitlines()[0][:300]), []).append(r["query"])
        notes = []
        for (system, error), queries in sorted(failures.items()):
            which = "every query" if len(queries) == len(size["results"]) else ", ".join(queries)
            notes.append(f"- {LABELS[system]} ({which}): {error}")
        load = {}
        for r in size["results"]:
            for system, info in r.get("peer_info", {}).items():
                if info and info.get("load_seconds", 0) > 0.5:
                    load[system] = info["load_seconds"]
        setup = size.get("setup", {})
        lines += ["", "One-off costs: " + ", ".join(
            [f"{k.replace('_seconds', '').replace('_', ' ')} {v:.1f} s" for k, v in setup.items()]
            + [f"{LABELS[s]} data load {v:.1f} s" for s, v in load.items()]
        ) + "."]
        if notes:
            lines += ["", "Not measured:", "", *dict.fromkeys(notes)]
        lines.append("")
    lines += scaling_markdown(report)
    if "accuracy" in report:
        lines += accuracy_markdown(report["accuracy"])
    lines += ["## Goals", "", "| goal | value | verdict |", "|---|---|---|"]
    for g in goals(report):
        lines.append(f"| {g['goal']} | {g['value']} | {_verdict(g['met'])} |")
    for v in report.get("accuracy", {}).get("verdicts", []):
        if v.get("best_peer"):
            lines.append(
                f"| accuracy {v['query']}.{v['column']} ({v['kind']}): MAE {v['goal']} | "
                f"{v['ratio']:.2f}x {LABELS[v['best_peer']]} | {_verdict(v['met'])} |"
            )
    lines.append("")
    return "\n".join(lines)


def scaling_markdown(report: dict[str, Any]) -> list[str]:
    """How each system's time grows with rows: the median at every size and the factor per
    10x more rows (1 = constant overhead, 10 = linear in rows)."""
    sizes = report["sizes"]
    if len(sizes) < 2:
        return []
    labels = [s["size"] for s in sizes]
    steps = [f"x ({b} / {a})" for a, b in zip(labels, labels[1:], strict=False)]
    lines = [
        "## Scaling",
        "",
        "Median per release at each size, and its growth from one size to the next (10x the rows: "
        "a factor near 1 is fixed overhead, near 10 is linear in the rows):",
        "",
        "| query | system | " + " | ".join(labels) + " | " + " | ".join(steps) + " |",
        "|---|---|" + "---|" * (len(labels) + len(steps)),
    ]
    for index, first in enumerate(sizes[0]["results"]):
        for system in ("duckdb_exact", "engine", "service", *PEERS):
            medians = [_median(size["results"][index], system) for size in sizes]
            if not any(medians):
                continue
            cells = [_ms(m) if m else "-" for m in medians]
            growth = [f"{b / a:.1f}" if a and b else "-" for a, b in zip(medians, medians[1:], strict=False)]
            lines.append(f"| {first['label']} | {LABELS[system]} | " + " | ".join(cells + growth) + " |")
    lines.append("")
    return lines


def accuracy_markdown(acc: dict[str, Any]) -> list[str]:
    lines = [
        f"## Accuracy at equal epsilon ({acc['rows']:,} rows, {acc['releases']} releases per system"
        + (f", {acc['date']})" if "date" in acc else ")"),
        "",
        f"Epsilon {acc['epsilon']} per query (delta {acc['delta']:g} for private keys). Absolute error against "
        "the exact answer with measures clamped to the shared bounds; for private keys a group that is not "
        "released counts as error = its true value. MAE (p95) over all releases x groups:",
        "",
        "| query | column | our engine | SmartNoise SQL | OpenDP Polars | ours / best peer |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = {(v["query"], v["column"]): v for v in acc.get("verdicts", [])}
    for qid, q in acc["queries"].items():
        columns = next((list(s["errors"]) for s in q["systems"].values() if "errors" in s), [])
        for column in columns:
            cells = []
            for system in ("engine", "smartnoise", "opendp"):
                s = q["systems"].get(system, {})
                if "errors" in s:
                    e = s["errors"][column]
                    text = f"{_num(e['mae'])} ({_num(e['p95'])})"
                    if e["released_share"] < 0.999:
                        text += f", {e['released_share']:.0%} released"
                    cells.append(text)
                else:
                    cells.append(s.get("error", "-").split(":", 1)[0])
            v = verdicts.get((qid, column), {})
            ratio = f"{v['ratio']:.2f}x ({LABELS[v['best_peer']]})" if v.get("best_peer") else "-"
            lines.append(f"| {q['label']} | {column} | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    behind = [v for v in acc.get("verdicts", []) if v.get("best_peer") and v["ratio"] > 1]
    if behind:
        from benchmarks.suite import QUERIES

        mechanisms = {q.id: q.mechanism for q in QUERIES}
        lines += ["Where our MAE is above the best peer's, and why:", ""]
        for v in behind:
            within = "within" if v["ours_mae"] - v["best_mae"] <= v["noise"] else "beyond"
            lines.append(
                f"- {acc['queries'][v['query']]['label']} ({v['column']}): {v['ratio']:.2f}x "
                f"{LABELS[v['best_peer']]}, {within} two standard errors; {mechanisms.get(v['query'], '')}."
            )
        lines.append("")
    return lines


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e5:
        return f"{x:.3g}"
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _mib(value: float | None) -> str:
    return f"{value:,.0f} MiB" if value else "-"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = report["sizes"]
    queries = [(r["query"], r["label"]) for r in sizes[0]["results"]] if sizes else []
    cols = 4
    rows_ = max(1, math.ceil(len(queries) / cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(4.2 * cols, 3.6 * rows_), squeeze=False)
    colors = {s: f"C{i}" for i, s in enumerate(ORDER)}
    for ax, (qid, label) in zip(axes.flat, queries, strict=False):
        for system in ORDER:
            xs, ys = [], []
            for size in sizes:
                r = next(r for r in size["results"] if r["query"] == qid)
                if system in r["stats"]:
                    xs.append(size["rows"])
                    ys.append(r["stats"][system]["median_s"])
            if xs:
                ax.plot(xs, ys, marker="o", color=colors[system], label=LABELS[system])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("rows")
        ax.set_ylabel("seconds per release (median)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(queries):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower right", fontsize=9, frameon=False,
               bbox_to_anchor=(0.98, 0.05) if len(queries) % cols else (0.5, -0.02))
    fig.suptitle(f"Time per release against rows (epsilon {report['meta']['epsilon']}, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def render(report: dict[str, Any], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    (out_dir / "peers.md").write_text(markdown(report))
    plot(report, out_dir / "peers_time.png")


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results"
    render(json.loads((out / "peers.json").read_text()), out)
    print((out / "peers.md").read_text())
