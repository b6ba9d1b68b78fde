"""OpenDP's Polars context as a benchmark peer (runs in benchmarks/envs/opendp/, see common.py).

Every release is one `dp.Context.compositor` over `pl.scan_parquet` of the shared file with the
whole query epsilon (`split_evenly_over=1`), then `context.query()...release().collect()`:

- privacy unit: `unit_of(contributions=1)` for `people` (one row per person), and
  `unit_of(identifier="person_id")` with the public bound "one group per person" +
  `truncate_per_group(max_rows)` for `visits` (several rows per person), whose public keys are
  then joined with `with_keys` (the margin's invariant does not survive truncation);
- margins: public keys are `Margin(by=[key], invariant="keys")`; private keys have no margin
  invariant, so OpenDP selects partitions with delta; `max_length` is the file's row count,
  the loose public bound OpenDP's float sums and means require, and public keys also give
  `max_groups` (the size of the public key set);
- aggregates: `dp.len()`, `.dp.sum(bounds)`, `.dp.mean(bounds)`, `.dp.median(candidates)`
  (candidates: the same 1001-point grid our planner uses).
"""

from __future__ import annotations

import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import opendp.prelude as dp  # noqa: E402
import polars as pl  # noqa: E402
from common import serve, timed  # noqa: E402

dp.enable_features("contrib")

_frames: dict[str, tuple[pl.LazyFrame, int]] = {}


def _frame(path: str) -> tuple[pl.LazyFrame, int]:
    if path not in _frames:
        frame = pl.scan_parquet(path)
        _frames[path] = (frame, int(frame.select(pl.len()).collect().item()))
    return _frames[path]


def _expression(agg: dict[str, Any]) -> pl.Expr:
    kind, alias = agg["kind"], agg["alias"]
    if kind == "len":
        return dp.len().alias(alias)
    column = pl.col(agg["column"]).fill_null(0.0)
    if kind == "sum":
        return column.dp.sum(tuple(agg["bounds"])).alias(alias)
    if kind == "mean":
        return column.dp.mean(tuple(agg["bounds"])).alias(alias)
    if kind == "median":
        return column.dp.median(agg["candidates"]).alias(alias)
    raise ValueError(f"unknown aggregate {kind!r}")


def _unit(identifier: str | None, by: list[str]) -> Any:
    if identifier is None:
        return dp.unit_of(contributions=1)
    # One identifier per person, in one group: the group is constant within a person (the
    # data generator makes it so; our registration verifies it). `truncate_num_groups(1)`
    # would be the enforcing alternative, but fails in OpenDP 0.16 + Polars 1.36.1 ("multiple
    # fields with name 'grp' found").
    bounds = [dp.polars.Bound(by=[], per_group=1)]
    if by:
        bounds.append(dp.polars.Bound(by=by, num_groups=1))
    return dp.unit_of(contributions=bounds, identifier=identifier)


def plan(path: str, spec: dict[str, Any], keys: str | None, epsilon: float, delta: float) -> Any:
    """The query as an OpenDP measurement (`make_private_lazyframe`, via the context)."""
    frame, rows = _frame(path)
    by = spec.get("by", [])
    identifier = spec.get("identifier")
    public = keys == "public"
    margin = dp.polars.Margin(
        by=by,
        max_length=rows,
        max_groups=len(spec["key_set"]) if public else None,
        invariant="keys" if public else None,
    )
    context = dp.Context.compositor(
        data=frame,
        privacy_unit=_unit(identifier, by),
        privacy_loss=dp.loss_of(epsilon=epsilon, delta=delta if keys == "private" else None),
        split_evenly_over=1,
        margins=[margin],
    )
    query = context.query()
    if identifier is not None:
        query = query.truncate_per_group(spec["max_rows"])
    if "filter" in spec:
        query = query.filter(pl.col(spec["filter"]["column"]) >= spec["filter"]["ge"])
    aggs = [_expression(a) for a in spec["aggs"]]
    query = query.group_by(*by).agg(*aggs) if by else query.select(*aggs)
    if identifier is not None and public:  # truncation drops the margin's invariant: join the keys
        query = query.with_keys(pl.LazyFrame({by[0]: spec["key_set"]}))
    return query.resolve()


def run(job: dict[str, Any]) -> tuple[list[float], list[Any] | None, dict[str, Any]]:
    """Timed: a whole release as an analyst makes it (context, plan, privacy maps, scan, noise).
    With `values`, the measurement is planned once and invoked `reps` times: each invocation is
    an independent release at the same epsilon, which is what the accuracy study needs."""
    query = job["query"]
    path = job["data"][query["table"]]
    load, _ = timed(lambda: _frame(path))  # only the row count: Polars scans per release
    args = (path, query["opendp"], query["keys"], job["epsilon"], job["delta"])
    seconds, plans, values = [], [], []
    measurement = None
    for _ in range(job["reps"]):
        start = time.perf_counter()
        if measurement is None or not job.get("values"):
            measurement = plan(*args)
        planned = time.perf_counter()
        rows = measurement(_frame(path)[0]).collect().to_dicts()
        seconds.append(time.perf_counter() - start)
        plans.append(planned - start)
        if job.get("values"):
            values.append(rows)
    info = {"load_seconds": load, "plan_seconds": plans, "version": version("opendp")}
    return seconds, values if job.get("values") else None, info


if __name__ == "__main__":
    serve(run)
