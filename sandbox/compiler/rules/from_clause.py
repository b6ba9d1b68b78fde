"""FROM: one private catalog dataset, optionally fused with others — private datasets of the same
privacy-unit domain joined ON their units, public reference tables joined on any key, per-unit
pre-aggregations — never files, table functions or arbitrary joins. Builds the query's scope and
makes column references canonical (qualified by their relation when several are in scope)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context, suggest
from sandbox.compiler.preaggregate import derived_relation
from sandbox.compiler.scope import Join, Relation, Scope, walk_outer
from sandbox.errors import DatasetNotFound
from sandbox.policy import Role

NAME = "from_clause"
MAX_RELATIONS = 4


def check(query: exp.Select, ctx: Context) -> None:
    source = query.args.get("from_")
    if source is None:
        ctx.reject(
            query,
            "A SELECT without FROM",
            "every query reads a catalog dataset",
            "Add FROM <dataset>; list datasets with the catalog.",
            NAME,
        )
    scope = Scope(_relation(source.this, ctx))
    if scope.base.kind == "public":
        hint = (
            "Put a private dataset first and join the reference table to it"
            if query.args.get("joins")
            else ("Public reference tables are for joins; read them directly from their publisher")
        )
        ctx.reject(
            source.this,
            f"The public dataset {scope.base.dataset.name!r} in FROM",
            "a query must aggregate private data",
            f"{hint}, e.g. FROM residents r JOIN {scope.base.dataset.name} d ON r.district = d.district.",
            NAME,
        )
    for join in query.args.get("joins") or []:
        if len(scope.relations) >= MAX_RELATIONS:
            ctx.reject(join, f"More than {MAX_RELATIONS} relations", "joins are limited", "Join fewer datasets.", NAME)
        scope.joins.append(_join(join, scope, ctx))
    aliases = [r.alias for r in scope.relations]
    if len(set(aliases)) != len(aliases):
        ctx.reject(
            query,
            "Two relations with the same name",
            "each relation needs its own alias",
            "Alias them, e.g. FROM a x JOIN b y ON x.person_id = y.person_id.",
            NAME,
        )
    ctx.scope = scope
    ctx.dataset = scope.unit_relation.dataset
    ctx.alias = scope.base.alias
    _canonical_columns(query, scope, ctx)


def _relation(node: exp.Expression, ctx: Context) -> Relation:
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
        return derived_relation(node, ctx)
    if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
        inner = node.this if isinstance(node, exp.Table) else node
        ctx.reject(
            inner,
            f"The table function {inner.sql('duckdb')[:60]}",
            "only catalog datasets can be read; files and table functions never can",
            "Write FROM <dataset> with a name from the catalog.",
            NAME,
        )
    if node.args.get("db") or node.args.get("catalog"):
        ctx.reject(
            node,
            f"The qualified name {node.sql('duckdb')}",
            "datasets are addressed by their bare catalog name",
            f"Write FROM {node.name}.",
            NAME,
        )
    if node.this.quoted and any(c in node.name for c in "./\\:"):
        ctx.reject(
            node,
            f"The path {node.name!r}",
            "files can never be read directly",
            "Write FROM <dataset> with a name from the catalog.",
            NAME,
        )
    try:
        dataset = ctx.catalog.get(node.name)
    except DatasetNotFound:
        names = ctx.catalog.names()
        ctx.reject(
            node,
            f"The dataset {node.name!r}",
            "it is not in the catalog",
            f"{suggest(node.name, names)}Available: {', '.join(names)}.",
            NAME,
        )
    policy = dataset.policy
    unit = None if policy.public else policy.privacy_unit
    return Relation(
        alias=node.alias or dataset.name,
        kind="public" if policy.public else "private",
        dataset=dataset,
        columns=policy.queryable(),
        unit=unit.column if unit else None,
        max_rows=unit.max_rows if unit else 0,
        max_groups=unit.max_groups if unit else 0,
        constant=_constant(dataset, unit),
        node=node,
    )


def _constant(dataset, unit) -> frozenset[str]:
    """Columns with one value per unit, known without looking at the data: all of them when the
    policy keeps one row per unit (the engine file holds at most that), else the declared ones."""
    if unit is None:
        return frozenset()
    if unit.max_rows == 1:
        return frozenset(dataset.policy.columns)
    return dataset.constant_dimensions | {unit.column}


def _join(join: exp.Join, scope: Scope, ctx: Context) -> Join:
    side, kind = (join.side or "").upper(), (join.kind or "").upper()
    if join.args.get("using"):
        ctx.reject(
            join,
            "JOIN ... USING",
            "the join condition must name both relations",
            "Write ON a.person_id = b.person_id.",
            NAME,
        )
    on = join.args.get("on")
    if on is None or kind in ("CROSS", "SEMI", "ANTI", "ASOF", "POSITIONAL", "NATURAL") or join.args.get("method"):
        ctx.reject(
            join,
            "A join without ON (cross, natural or comma join)",
            "it would pair every row with every row",
            "Write JOIN b ON a.<unit> = b.<unit>.",
            NAME,
        )
    if side in ("RIGHT", "FULL"):
        ctx.reject(
            join,
            f"A {side} JOIN",
            "rows without a unit from the left side cannot be bounded",
            "Use INNER or LEFT JOIN with the private dataset on the left.",
            NAME,
        )
    relation = _relation(join.this, ctx)
    if scope.by_alias(relation.alias):
        ctx.reject(
            join.this,
            f"The name {relation.alias!r} twice",
            "each relation needs its own alias",
            "Alias the second one.",
            NAME,
        )
    visible = Scope(scope.base, [*scope.joins, Join("inner", relation, on)])
    conjuncts = list(on.flatten()) if isinstance(on, exp.And) else [on]
    links = []
    for conjunct in conjuncts:
        for column in conjunct.find_all(exp.Column):
            resolved = visible.resolve(column)
            if resolved is None:
                ctx.reject(
                    column,
                    f"The column {column.sql('duckdb')} in ON",
                    "it names no single column of the joined relations",
                    "Qualify it with the relation's alias, e.g. r.district.",
                    NAME,
                )
        if isinstance(conjunct, exp.EQ) and all(
            isinstance(s, exp.Column) for s in (conjunct.this, conjunct.expression)
        ):
            left, right = (visible.resolve(conjunct.this), visible.resolve(conjunct.expression))
            sides = {left[0].alias, right[0].alias}
            if relation.alias in sides and len(sides) == 2:
                links.append((left, right) if right[0] is relation else (right, left))
    if relation.private:
        unit_links = [
            (old, new)
            for old, new in links
            if old[0].private
            and old[1] is old[0].columns.get(old[0].unit)
            and new[1] is relation.columns.get(relation.unit)
        ]
        if not unit_links:
            ctx.reject(
                on,
                f"Joining {relation.dataset.name!r} on something other than its privacy unit",
                "private datasets may only be fused person by person (or enterprise by enterprise), or "
                "one person's rows could meet another's",
                f"Join ON <left>.<unit> = {relation.alias}.{relation.unit}, with the units of the same domain.",
                NAME,
            )
        old = unit_links[0][0][0]
        domain_old, domain_new = old.dataset.policy.domain, relation.dataset.policy.domain
        if domain_old is None or domain_old != domain_new:
            ctx.reject(
                on,
                f"Joining {old.dataset.name!r} ({domain_old or 'no domain'}) with "
                f"{relation.dataset.name!r} ({domain_new or 'no domain'})",
                "their privacy units belong to different domains, so one unit's rows cannot be bounded across both",
                "Query each dataset on its own, or join datasets of one domain.",
                NAME,
            )
    else:
        if not any(old[0].private or old[0].kind == "public" for old, _ in links):
            ctx.reject(
                on,
                f"Joining the public {relation.dataset.name!r} without an equality",
                "the join must match keys",
                f"Write ON r.<column> = {relation.alias}.<column>.",
                NAME,
            )
        for old, _ in links:
            if old[1].role is Role.identifier:
                ctx.reject(
                    on,
                    "Joining public data on an identifier",
                    "it would attach public facts to single persons",
                    "Join on a dimension such as district.",
                    NAME,
                )
    for column in on.find_all(exp.Column):
        resolved = visible.resolve(column)
        if (
            resolved
            and resolved[1].role is Role.identifier
            and not any(column.name == r.unit and r.private for r in visible.relations if column.name in r.columns)
        ):
            ctx.reject(
                column,
                f"The identifier {column.name!r} in ON",
                "only privacy units may link relations",
                "Join on the units.",
                NAME,
            )
    return Join("left" if side == "LEFT" else "inner", relation, on)


def _canonical_columns(query: exp.Select, scope: Scope, ctx: Context) -> None:
    """One relation: drop qualifiers (as before). Several: qualify every resolvable reference
    with its relation, so equal-looking names from different relations never match."""
    outputs = {item.alias.lower() for item in query.expressions if item.alias}
    aliases = {r.alias for r in scope.relations}
    for column in [n for n in walk_outer(query) if isinstance(n, exp.Column)]:
        if column.table and column.table not in aliases:
            ctx.reject(
                column,
                f"The qualifier {column.table!r}",
                "it names no relation in FROM",
                f"Use one of: {', '.join(sorted(aliases))}.",
                NAME,
            )
        if not column.table and column.name in outputs and column.find_ancestor(exp.Order, exp.Having):
            continue
        resolved = scope.resolve(column)
        if resolved is None:
            continue  # known_columns explains
        if scope.fused:
            column.set("table", exp.to_identifier(resolved[0].alias))
        else:
            column.set("table", None)
