"""The accepted SQL subset, as sqlglot node types. Anything not listed here is rejected.

An allowlist of *node types* (not of function names found by regex) means a construct the
parser learns tomorrow is refused until someone adds it here on purpose.
"""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.typecheck import RULES as TYPE_RULES

__all__ = [
    "AGGREGATES",
    "FORBIDDEN_AGGREGATES",
    "SAFE_ANONYMOUS",
    "SCALAR_NODES",
    "STRUCTURAL_NODES",
    "is_aggregate",
]

# Aggregates we can release with differential privacy (see planner.py for how).
AGGREGATES: tuple[type[exp.Expression], ...] = (
    exp.Count,
    exp.Sum,
    exp.Avg,
    exp.Variance,
    exp.VariancePop,
    exp.Stddev,
    exp.StddevSamp,
    exp.StddevPop,
    exp.Median,
    exp.PercentileCont,
    exp.Quantile,
    exp.Min,  # released as quantiles near the extremes (extremes.py)
    exp.Max,
    exp.Corr,  # of two bounded columns, from noisy sums of products (products.py)
    exp.CovarSamp,
    exp.CovarPop,
    exp.RegrSlope,
    exp.RegrIntercept,
    exp.RegrCount,
)

# Aggregates that reveal single rows, with what to write instead.
FORBIDDEN_AGGREGATES: dict[type[exp.Expression], tuple[str, str]] = {
    exp.ArgMax: ("ARG_MAX returns one row's value", "Use GROUP BY with COUNT or a quantile."),
    exp.ArgMin: ("ARG_MIN returns one row's value", "Use GROUP BY with COUNT or a quantile."),
    exp.ArrayAgg: ("LIST/ARRAY_AGG returns row values", "Aggregate with COUNT, SUM or AVG."),
    exp.GroupConcat: ("STRING_AGG returns row values", "Aggregate with COUNT per group."),
    exp.Mode: ("MODE returns one exact value", "GROUP BY the column and compare noisy COUNT(*)."),
    exp.First: ("FIRST returns one row's value", "Aggregate with COUNT, SUM or AVG."),
    exp.Last: ("LAST returns one row's value", "Aggregate with COUNT, SUM or AVG."),
    exp.AnyValue: ("ANY_VALUE returns one row's value", "GROUP BY the column instead."),
}

STRUCTURAL_NODES: tuple[type[exp.Expression], ...] = (
    exp.Select,
    exp.From,
    exp.Table,
    exp.TableAlias,
    exp.Identifier,
    exp.Column,
    exp.Alias,
    exp.Where,
    exp.Group,
    exp.Having,
    exp.Order,
    exp.Ordered,
    exp.Limit,
    exp.Offset,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Star,
    exp.DataType,
    exp.DataTypeParam,
    exp.Var,
    exp.Tuple,
    exp.Distinct,
    exp.Paren,
    exp.Join,
)

# Pure, bounded-cost scalar functions and operators: exactly those with a typing rule
# (typecheck.RULES), so a node type is in the subset only if its types and totality are known.
SCALAR_NODES: tuple[type[exp.Expression], ...] = tuple(
    node for node in TYPE_RULES if node not in STRUCTURAL_NODES and node is not exp.Anonymous
)

# DuckDB functions sqlglot does not model, known to be pure and cheap.
SAFE_ANONYMOUS = frozenset({"date_part", "datepart"})


def is_aggregate(node: exp.Expression) -> bool:
    return isinstance(node, AGGREGATES)
