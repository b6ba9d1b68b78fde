"""FROM: one private catalog dataset, optionally fused with others — private datasets of the same
privacy-unit domain joined ON their units, public reference tables joined on any key, per-unit
pre-aggregations — never files, table functions or arbitrary joins.

`source`, `relation` and `join_syntax` are used by the binder while it builds the scope; `check`
runs on the bound query and judges each join by lineage: a private relation joins only where a
conjunct equates two outputs that *are* units (whatever they are called)."""

from __future__ import annotations

from sqlglot import exp

from sandbox.compiler.context import Context, suggest
from sandbox.compiler.preaggregate import derived_relation
from sandbox.compiler.scope import Relation, base_relation
from sandbox.errors import DatasetNotFound
from sandbox.policy import Role

NAME = "from_clause"
MAX_RELATIONS = 4


def source(query: exp.Select, ctx: Context) -> exp.From:
    found = query.args.get("from_")
    if found is None:
        ctx.reject(
            query,
            "A SELECT without FROM",
            "every query reads a catalog dataset",
            "Add FROM <dataset>; list datasets with the catalog.",
            NAME,
        )
    if len(query.args.get("joins") or []) >= MAX_RELATIONS:
        join = query.args["joins"][MAX_RELATIONS - 1]
        ctx.reject(join, f"More than {MAX_RELATIONS} relations", "joins are limited", "Join fewer datasets.", NAME)
    return found


def relation(node: exp.Expression, ctx: Context) -> Relation:
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
    return base_relation(dataset, node.alias or dataset.name, ctx.contribution)


def join_syntax(join: exp.Join, scope, ctx: Context) -> None:
    side, kind = (join.side or "").upper(), (join.kind or "").upper()
    if join.args.get("using"):
        ctx.reject(
            join,
            "JOIN ... USING",
            "the join condition must name both relations",
            "Write ON a.person_id = b.person_id.",
            NAME,
        )
    if (
        join.args.get("on") is None
        or kind in ("CROSS", "SEMI", "ANTI", "ASOF", "POSITIONAL", "NATURAL")
        or join.args.get("method")
    ):
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


def unit_links(on: exp.Expression, bound) -> list[exp.EQ]:
    """The conjuncts of ON that equate two privacy units (by lineage)."""
    conjuncts = list(on.flatten()) if isinstance(on, exp.And) else [on]
    found = []
    for conjunct in conjuncts:
        while isinstance(conjunct, exp.Paren):
            conjunct = conjunct.this
        if isinstance(conjunct, exp.EQ) and bound.is_unit(conjunct.this) and bound.is_unit(conjunct.expression):
            found.append(conjunct)
    return found


def check(query: exp.Select, ctx: Context) -> None:
    scope, bound = ctx.bound.scope, ctx.bound
    if scope.base.kind == "public":
        hint = (
            "Put a private dataset first and join the reference table to it"
            if query.args.get("joins")
            else ("Public reference tables are for joins; read them directly from their publisher")
        )
        ctx.reject(
            query.args["from_"].this,
            f"The public dataset {scope.base.dataset.name!r} in FROM",
            "a query must aggregate private data",
            f"{hint}, e.g. FROM residents r JOIN {scope.base.dataset.name} d ON r.district = d.district.",
            NAME,
        )
    for index, join in enumerate(scope.joins):
        new = join.relation
        earlier = {r.alias for r in scope.relations[: index + 1]}
        if new.private:
            _private_join(join, new, earlier, bound, ctx)
        else:
            _public_join(join, new, earlier, bound, ctx)


def _private_join(join, new: Relation, earlier: set[str], bound, ctx: Context) -> None:
    links = []
    for eq in unit_links(join.on, bound):
        sides = {bound.ref(eq.this)[0].alias: eq.this, bound.ref(eq.expression)[0].alias: eq.expression}
        if new.alias in sides and len(sides) == 2 and (set(sides) - {new.alias}) <= earlier:
            other = next(a for a in sides if a != new.alias)
            links.append(bound.ref(sides[other])[0])
    if not links:
        unit = new.unit or new.dataset.policy.unit
        ctx.reject(
            join.on,
            f"Joining {new.dataset.name!r} on something other than its privacy unit",
            "private datasets may only be fused person by person (or enterprise by enterprise), or "
            "one person's rows could meet another's",
            f"Join ON <left>.<unit> = {new.alias}.{unit}, with the units of the same domain.",
            NAME,
        )
    old = links[0]
    domain_old, domain_new = old.dataset.policy.domain, new.dataset.policy.domain
    if domain_old is None or domain_old != domain_new:
        ctx.reject(
            join.on,
            f"Joining {old.dataset.name!r} ({domain_old or 'no domain'}) with "
            f"{new.dataset.name!r} ({domain_new or 'no domain'})",
            "their privacy units belong to different domains, so one unit's rows cannot be bounded across both",
            "Query each dataset on its own, or join datasets of one domain.",
            NAME,
        )


def _public_join(join, new: Relation, earlier: set[str], bound, ctx: Context) -> None:
    conjuncts = list(join.on.flatten()) if isinstance(join.on, exp.And) else [join.on]
    linked = False
    for conjunct in conjuncts:
        while isinstance(conjunct, exp.Paren):
            conjunct = conjunct.this
        if not isinstance(conjunct, exp.EQ):
            continue
        sides = [s for s in (conjunct.this, conjunct.expression) if isinstance(s, exp.Column)]
        if len(sides) != 2:
            continue
        aliases = {bound.ref(s)[0].alias for s in sides}
        if new.alias in aliases and len(aliases) == 2:
            linked = True
            for side in sides:
                relation, name = bound.ref(side)
                if relation.alias != new.alias and relation.outputs[name].column.role is Role.identifier:
                    ctx.reject(
                        join.on,
                        "Joining public data on an identifier",
                        "it would attach public facts to single persons",
                        "Join on a dimension such as district.",
                        NAME,
                    )
    if not linked:
        ctx.reject(
            join.on,
            f"Joining the public {new.dataset.name!r} without an equality",
            "the join must match keys",
            f"Write ON r.<column> = {new.alias}.<column>.",
            NAME,
        )
