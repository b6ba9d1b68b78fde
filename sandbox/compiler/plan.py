"""The compiled plan: generated bounded SQL plus a noise plan, and nothing of the user's text
that will ever be executed. Plain frozen dataclasses, so a plan crosses into the worker process
by pickling and can be shown to the user by `explain`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sandbox.notes import Note

__all__ = ["OutputColumn", "OutputRules", "Plan", "Primitive", "Selection"]

PrimitiveKind = Literal["count", "units", "distinct", "sum", "quantile", "moment"]


@dataclass(frozen=True)
class Primitive:
    """One noisy statistic per group; every user aggregate is built from these.

    count     COUNT(*) or COUNT(column) of bounded rows; L1 sensitivity = max_rows
    units     COUNT(DISTINCT unit); L1 sensitivity = groups one unit can reach
    distinct  COUNT(DISTINCT column) of another column; L1 sensitivity = max_rows, or the groups
              one unit can reach when the column is constant within a unit; ungrouped, over a
              declared key set (`values`, and only those are counted), at most its size
    sum       SUM of clamped values (or of their squared deviations from `shift`, the middle
              of the bounds), quantized to integers on a grid of `step`, minus `center` grid
              units per value; L1 sensitivity = max_rows * largest |quantized value - center|
    moment    SUM of (clamp(x) - shift)^p * (clamp(y) - other_shift)^q, (p, q) = `powers`, over the rows
              where x (`column`) and y (`other`) are both present, quantized to a grid of `step`
              (products.py); L1 sensitivity = max_rows * largest |quantized product|
    quantile  exponential mechanism over `candidates` grid points from `lo` in steps of `step`;
              `sensitivity` is the number of rows one unit can change (d_in)
    """

    id: str
    kind: PrimitiveKind
    column: str | None
    sensitivity: int
    epsilon: float
    scale: float
    power: int = 1
    alpha: float | None = None
    step: float = 1.0
    lo: float = 0.0
    hi: float = 0.0
    candidates: int = 0
    center: int = 0
    shift: float = 0.0  # power 2: the sum is of (clamp(x) - shift)**2, deviations from the bounds' middle
    internal: bool = False
    from_histogram: str | None = None  # a count that is the total of this quantile's histogram
    values: tuple[Any, ...] | None = None  # distinct: only these (the declared key set) are counted
    other: str | None = None  # moment: the second column, its bounds and the middle it is centred on
    powers: tuple[int, int] = (0, 0)
    other_lo: float = 0.0
    other_hi: float = 0.0
    other_shift: float = 0.0

    @property
    def mechanism(self) -> str:
        return "exponential (OpenDP noisy max)" if self.kind == "quantile" else "discrete Laplace (OpenDP)"


@dataclass(frozen=True)
class Selection:
    """Private partition selection: a group is released only if its noisy count passes the
    threshold (OpenDP's Laplace threshold mechanism), so rare keys never leak."""

    primitive: str
    l0: int
    l1: int
    linf: int
    epsilon: float
    delta: float
    scale: float
    threshold: int


@dataclass(frozen=True)
class OutputColumn:
    name: str
    kind: Literal["key", "aggregate", "derived"]
    function: str | None = None  # count / sum / avg / var / stddev / quantile for one aggregate
    primitives: tuple[str, ...] = ()
    half_width: float | None = None  # 95% half-width when it does not depend on the data


@dataclass(frozen=True)
class OutputRules:
    """Rules an agreement adds on top of the dataset policy; the strictest rule wins."""

    min_count: int = 0
    round_to: int = 1
    max_epsilon: float | None = None


@dataclass(frozen=True)
class Plan:
    sql: str
    normalized_sql: str
    dataset: str
    attach: dict[str, str]
    epsilon: float
    delta: float
    aggregate_sql: str
    histogram_sql: dict[str, str]
    key_names: tuple[str, ...]
    public_keys: tuple[tuple[Any, ...], ...] | None
    primitives: tuple[Primitive, ...]
    selection: Selection | None
    suppress_by: str | None
    min_count: int
    round_to: int
    output_sql: str
    outputs: tuple[OutputColumn, ...]
    max_rows: int
    scope: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dataset -> base columns read anywhere
    notes: tuple[Note, ...] = ()  # sandbox.notes: English in `notes`, {key, values} in `note_details`
    bias: tuple[dict[str, Any], ...] = ()  # what bounding and clamping are estimated to leave out
    choices: tuple[dict[str, Any], ...] = ()  # per dataset: noise and rows left out for each max_rows

    @property
    def needs_aggregate(self) -> bool:
        """False when every statistic is a quantile over known groups (public keys or none):
        the histograms are all the worker has to read."""
        return any(p.kind != "quantile" and p.from_histogram is None for p in self.primitives)

    def primitive(self, pid: str) -> Primitive:
        return next(p for p in self.primitives if p.id == pid)

    def explain(self) -> dict[str, Any]:
        """What `explain` shows: the charge, the generated SQL and per-column noise, no data."""
        return {
            "dataset": self.dataset,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_rows_per_unit": self.max_rows,
            "public_keys": self.public_keys is not None,
            "group_count": len(self.public_keys) if self.public_keys is not None else None,
            "bounded_sql": self.aggregate_sql,
            "histogram_sql": self.histogram_sql,
            "output_sql": self.output_sql,
            "primitives": [asdict(p) | {"mechanism": p.mechanism} for p in self.primitives],
            "selection": asdict(self.selection) if self.selection else None,
            "columns": [asdict(c) for c in self.outputs],
            "output_rules": {"min_count": self.min_count, "round_to": self.round_to},
            "notes": [str(n) for n in self.notes],
            "note_details": [n.detail() for n in self.notes],
            "bias": list(self.bias),
            "contribution_choices": list(self.choices),
        }
