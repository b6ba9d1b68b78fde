"""Only one plain SELECT: no writes, settings, pragmas, set operations or SELECT DISTINCT."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context

NAME = "single_select"


def check(query: exp.Expression, ctx: Context) -> None:
    if isinstance(query, exp.SetOperation):
        kind = type(query).__name__.upper()
        ctx.reject(
            query,
            f"The set operation {kind}",
            "combining result sets can isolate individuals",
            "Run each SELECT as its own query and combine the released results.",
            NAME,
        )
    if not isinstance(query, exp.Select):
        kind = query.key.upper() if query.key else type(query).__name__
        ctx.reject(
            query,
            f"A {kind} statement",
            "only SELECT queries run in the sandbox",
            "Write a SELECT with aggregates over a catalog dataset.",
            NAME,
        )
    if query.args.get("distinct"):
        ctx.reject(
            query.args["distinct"],
            "SELECT DISTINCT",
            "it lists exact values row by row",
            "Use GROUP BY with COUNT(*) to see which values occur.",
            NAME,
        )
    for key in ("qualify", "windows", "into", "sample", "locks", "connect", "prewhere"):
        if query.args.get(key):
            node = query.args[key]
            ctx.reject(
                node[0] if isinstance(node, list) else node,
                key.upper(),
                "it is outside the supported subset",
                "Remove it; filter with WHERE and aggregate with GROUP BY.",
                NAME,
            )
