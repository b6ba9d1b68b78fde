"""FROM names exactly one catalog dataset: no joins, table functions, files or schemas."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context, suggest
from sandbox.errors import DatasetNotFound

NAME = "single_dataset"


def check(query: exp.Select, ctx: Context) -> None:
    source = query.args.get("from_")
    if source is None:
        ctx.reject(query, "A SELECT without FROM", "every query reads one catalog dataset",
                   "Add FROM <dataset>; list datasets with the catalog.", NAME)
    if query.args.get("joins"):
        ctx.reject(query.args["joins"][0], "A JOIN", "joins are not supported yet",
                   "Query one dataset at a time and combine the released aggregates.", NAME)
    table = source.this
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        inner = table.this if isinstance(table, exp.Table) else table
        ctx.reject(inner, f"The table function {inner.sql('duckdb')[:60]}",
                   "only catalog datasets can be read; files and table functions never can",
                   "Write FROM <dataset> with a name from the catalog.", NAME)
    if table.args.get("db") or table.args.get("catalog"):
        ctx.reject(table, f"The qualified name {table.sql('duckdb')}",
                   "datasets are addressed by their bare catalog name",
                   f"Write FROM {table.name}.", NAME)
    if table.this.quoted and any(c in table.name for c in "./\\:"):
        ctx.reject(table, f"The path {table.name!r}", "files can never be read directly",
                   "Write FROM <dataset> with a name from the catalog.", NAME)
    try:
        ctx.dataset = ctx.catalog.get(table.name)
    except DatasetNotFound:
        names = ctx.catalog.names()
        ctx.reject(table, f"The dataset {table.name!r}", "it is not in the catalog",
                   f"{suggest(table.name, names)}Available: {', '.join(names)}.", NAME)
    if ctx.dataset.policy.public:
        ctx.reject(table, f"The public dataset {table.name!r}",
                   "public reference tables are for joins, which are not supported yet",
                   "Read public reference data directly from its publisher.", NAME)
    ctx.alias = table.alias or None
