"""The fixed query suite of the side-by-side benchmark, written once per system.

Each query is given as our SQL (what an analyst sends the sandbox), SmartNoise SQL's dialect of
the same query, and a small declarative spec that `benchmarks/peers/opendp_job.py` turns into
an OpenDP Polars plan. Output columns carry the same names everywhere (`n`, `s`, `m`, `med`),
so releases can be compared cell by cell.

Privacy semantics shared by all three (every mismatch: README.md, "Equal privacy, and where it
is not quite equal"):
- `people` has one row per person: our policy says `max_rows: 1`, SmartNoise `max_ids: 1`,
  OpenDP `unit_of(contributions=1)` (a person is one row, so add/remove-one-row = user level);
- `visits` has up to 12 rows per person, bounded to 4: our `max_rows: 4`, SmartNoise
  `max_ids: 4` (reservoir sampling), OpenDP `identifier="person_id"` + `truncate_per_group(4)`;
- public keys (`grp`): our policy's `keys:`, OpenDP `Margin(invariant="keys")`, SmartNoise
  `censor_dims: False` (it has no public key sets: it outputs the keys found in the data);
- private keys (`region`): threshold selection with delta = 1e-7 in all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DELTA", "EPSILON", "QUERIES", "Query", "candidates"]

EPSILON = 1.0
DELTA = 1e-7  # private partition selection only (the policies' default_delta)
INCOME = (0.0, 200_000.0)
COST = (0.0, 2_000.0)
GROUPS = ("north", "south", "east", "west")  # = benchmarks/policies/*.yaml keys
MEDIAN_CANDIDATES = 1001  # our planner's grid for a DOUBLE measure: 1001 points over [lo, hi]


def candidates(bounds: tuple[float, float], n: int = MEDIAN_CANDIDATES) -> list[float]:
    """The same candidate grid our planner uses for quantiles (lo + i * step)."""
    lo, hi = bounds
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


@dataclass(frozen=True)
class Query:
    id: str
    table: str
    label: str
    sql: str  # ours; `{table}` is the dataset name for the engine, the Parquet for DuckDB
    smartnoise: str | None  # SmartNoise SQL (table `bench.<table>`); None if not expressible
    opendp: dict[str, Any]  # spec for benchmarks/peers/opendp_job.py
    keys: str | None = None  # "public", "private" or None (ungrouped)
    kinds: dict[str, str] = field(default_factory=dict)  # output column -> count/sum/mean/median
    # How our mechanism compares with the peers': the report quotes it where our error is higher.
    mechanism: str = ""

    @property
    def key_column(self) -> str | None:
        return self.opendp.get("by", [None])[0] if self.opendp.get("by") else None

    def job(self) -> dict[str, Any]:
        """What a peer script needs to run this query (JSON-serialisable)."""
        return {
            "id": self.id,
            "table": self.table,
            "keys": self.keys,
            "smartnoise": self.smartnoise,
            "opendp": self.opendp,
        }


def _income(kind: str) -> dict[str, Any]:
    agg: dict[str, Any] = {"kind": kind, "column": "income", "bounds": list(INCOME)}
    if kind == "median":
        agg["candidates"] = candidates(INCOME)
    return agg


QUERIES = (
    Query(
        "count",
        "people",
        "grouped COUNT, 4 public groups",
        "SELECT grp, COUNT(*) AS n FROM {table} GROUP BY grp",
        "SELECT grp, COUNT(*) AS n FROM bench.people GROUP BY grp",
        {"by": ["grp"], "key_set": list(GROUPS), "aggs": [{"kind": "len", "alias": "n"}]},
        "public",
        {"n": "count"},
        "discrete Laplace at scale 1 per group, as OpenDP's; SmartNoise adds continuous noise",
    ),
    Query(
        "sum",
        "people",
        "grouped SUM(income), public groups",
        "SELECT grp, SUM(income) AS s FROM {table} GROUP BY grp",
        "SELECT grp, SUM(income) AS s FROM bench.people GROUP BY grp",
        {"by": ["grp"], "key_set": list(GROUPS), "aggs": [_income("sum") | {"alias": "s"}]},
        "public",
        {"s": "sum"},
        "discrete Laplace with sensitivity 200,000 (the bound), as the peers' (OpenDP's continuous "
        "Laplace is slightly wider for rounding); a lone SUM has no released count to centre on",
    ),
    Query(
        "mean",
        "people",
        "grouped AVG(income), public groups",
        "SELECT grp, AVG(income) AS m FROM {table} GROUP BY grp",
        "SELECT grp, AVG(income) AS m FROM bench.people GROUP BY grp",
        {"by": ["grp"], "key_set": list(GROUPS), "aggs": [_income("mean") | {"alias": "m"}]},
        "public",
        {"m": "mean"},
        "a sum of deviations from the middle of the bounds (half the sensitivity) and a count, "
        "epsilon split evenly; the peers sum raw values",
    ),
    Query(
        "median",
        "people",
        "grouped MEDIAN(income), public groups",
        "SELECT grp, MEDIAN(income) AS med FROM {table} GROUP BY grp",
        "SELECT grp, MEDIAN(income) AS med FROM bench.people GROUP BY grp",  # rejected by SmartNoise
        {"by": ["grp"], "key_set": list(GROUPS), "aggs": [_income("median") | {"alias": "med"}]},
        "public",
        {"med": "median"},
        "OpenDP's quantile scores and noisy max over the same 1001 candidates as OpenDP",
    ),
    Query(
        "private_keys",
        "people",
        "COUNT by region (200 private keys)",
        "SELECT region, COUNT(*) AS n FROM {table} GROUP BY region",
        "SELECT region, COUNT(*) AS n FROM bench.people GROUP BY region",
        {"by": ["region"], "aggs": [{"kind": "len", "alias": "n"}]},
        "private",
        {"n": "count"},
        "OpenDP's Laplace threshold on the released count, as OpenDP's (threshold raised one step "
        "for opendp#2922); SmartNoise spends half its epsilon on a separate threshold count",
    ),
    Query(
        "filtered_count",
        "people",
        "COUNT WHERE age >= 65 (ungrouped)",
        "SELECT COUNT(*) AS n FROM {table} WHERE age >= 65",
        "SELECT COUNT(*) AS n FROM bench.people WHERE age >= 65",
        {"by": [], "filter": {"column": "age", "ge": 65}, "aggs": [{"kind": "len", "alias": "n"}]},
        None,
        {"n": "count"},
        "discrete Laplace at scale 1, as OpenDP's; one cell per release, so its MAE is noisy",
    ),
    Query(
        "multirow",
        "visits",
        "grouped COUNT+SUM(cost), <= 4 rows/person",
        "SELECT grp, COUNT(*) AS n, SUM(cost) AS s FROM {table} GROUP BY grp",
        "SELECT grp, COUNT(*) AS n, SUM(cost) AS s FROM bench.visits GROUP BY grp",
        {
            "by": ["grp"],
            "key_set": list(GROUPS),
            "identifier": "person_id",
            "max_rows": 4,
            "aggs": [
                {"kind": "len", "alias": "n"},
                {"kind": "sum", "column": "cost", "bounds": list(COST), "alias": "s"},
            ],
        },
        "public",
        {"n": "count", "s": "sum"},
        "the error is mostly the bias of keeping at most 4 rows per person: ours are chosen once, by a "
        "keyed hash at registration, the peers' sampled anew per release (same expected bias, ours "
        "fixed); our SUM's noise is smaller (centred on the released COUNT; cost is verified non-null)",
    ),
)
