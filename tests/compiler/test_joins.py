"""A join of a one-row-per-person dataset with a ten-rows-per-person one keeps up to ten joined
rows per person (each side capped before the join), and removing one person from every dataset
of the domain moves every exact statistic by at most its declared sensitivity. The ten rows are
the analyst's own choice below the policy's ceiling (contribution bounds per query)."""

from __future__ import annotations

import duckdb
import pytest

from sandbox.compiler import compile_query
from tests.support.exact import exact_primitives

JOIN = "FROM residents r JOIN medical_visits m ON r.person_id = m.person_id"
TEN = {"max_rows": {"medical_visits": 10}}
QUERIES = [
    f"SELECT r.district, COUNT(*), SUM(m.cost) {JOIN} GROUP BY r.district",
    f"SELECT m.department, COUNT(*), AVG(m.cost) {JOIN} GROUP BY m.department",
    f"SELECT COUNT(DISTINCT r.person_id), MEDIAN(m.cost) {JOIN} WHERE r.age >= 60",
    # expressions and FILTER over joined rows; keys and output arithmetic from the public table
    f"SELECT r.district, AVG(m.cost * 0.8), COUNT(*) FILTER (WHERE m.cost > 500) {JOIN} GROUP BY r.district",
    f"SELECT d.district, COUNT(*) * 1000.0 / d.population AS per_1000, SUM(CASE WHEN m.cost > 1000 THEN 1 ELSE 0 END) "
    f"{JOIN} JOIN district_reference d ON r.district = d.district GROUP BY d.district, d.population",
]
PER_CAPITA = (
    "SELECT d.district, COUNT(*) * 1000.0 / d.population AS per_1000 FROM residents r "
    "JOIN district_reference d ON r.district = d.district {where} GROUP BY d.district, d.population"
)


def test_public_table_columns_group_by_the_tables_rows(demo_catalog) -> None:
    """Every column of a public table is public: grouping by d.population is allowed, and the
    groups are the table's (district, population) rows, also those no private row reaches (so a
    group's presence says nothing about the private data); the key is a point in the interval."""
    reference = demo_catalog.get("district_reference")
    table = duckdb.sql(f"SELECT DISTINCT district, population FROM '{reference.parquet_path}' ORDER BY ALL")
    rows = {tuple(r) for r in table.fetchall()}
    plan = compile_query(PER_CAPITA.format(where="WHERE r.district = 'Siming'"), demo_catalog, epsilon=1.0)
    assert set(plan.public_keys) == rows and plan.selection is None
    reached = exact_primitives(plan)
    assert set(reached) == {r for r in rows if r[0] == "Siming"}, "only Siming's rows are in the data"
    left = compile_query(
        PER_CAPITA.format(where="").replace("JOIN district_reference", "LEFT JOIN district_reference"),
        demo_catalog,
        epsilon=1.0,
    )
    assert set(left.public_keys) == rows | {(None, None)}, "a LEFT join's unmatched rows are one more group"
    assert "__k1" in left.output_sql, "the population is the released key, exact"


def test_each_person_keeps_up_to_ten_visits(demo_catalog) -> None:
    plan = compile_query(f"SELECT COUNT(*) {JOIN}", demo_catalog, epsilon=1.0, contribution=TEN)
    assert plan.primitives[0].sensitivity == 10
    visits = demo_catalog.get("medical_visits")
    truth = duckdb.sql(
        f"SELECT sum(least(n, 10)) FROM (SELECT person_id, count(*) AS n FROM '{visits.parquet_path}' "
        f"GROUP BY person_id) v JOIN '{demo_catalog.get('residents').parquet_path}' r USING (person_id)"
    ).fetchall()[0][0]
    assert exact_primitives(plan)[()]["p0"] == truth


@pytest.fixture(scope="module")
def shadow(demo_catalog):
    con = duckdb.connect()
    for name in ("residents", "medical_visits", "district_reference"):
        con.execute(f'CREATE SCHEMA "{name}"')
        con.execute(f"ATTACH '{demo_catalog.get(name).engine_path}' AS src (READ_ONLY)")
        con.execute(f'CREATE TABLE "{name}".data AS SELECT * FROM src.main.data')
        con.execute("DETACH src")
    heaviest = con.execute(
        'SELECT person_id FROM "medical_visits".data GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3'
    ).fetchall()
    yield con, [row[0] for row in heaviest]
    con.close()


def _exact(con, plan) -> dict:
    result: dict = {}
    n = len(plan.key_names)
    for pid, sql in [(None, plan.aggregate_sql), *plan.histogram_sql.items()]:
        text = sql
        for name in plan.attach:
            text = text.replace(f'"{name}".main.data', f'"{name}".data')
        cursor = con.execute(text)
        names = [d[0] for d in cursor.description][n:]
        for row in cursor.fetchall():
            group = result.setdefault(tuple(row[:n]), {})
            if pid is None:
                group.update(zip(names, row[n:], strict=True))
            else:
                group[(pid, row[n])] = row[n + 1]
    for p in plan.primitives:  # counts the engine takes from a histogram's total
        if p.from_histogram is not None:
            for group in result.values():
                group[p.id] = sum(v for k, v in group.items() if isinstance(k, tuple) and k[0] == p.from_histogram)
    return result


@pytest.mark.parametrize("sql", QUERIES)
def test_removing_a_person_moves_each_statistic_within_its_sensitivity(demo_catalog, shadow, sql) -> None:
    con, heaviest = shadow
    plan = compile_query(sql, demo_catalog, epsilon=1.0, contribution=TEN)
    full = _exact(con, plan)
    for person in heaviest:
        con.execute("BEGIN TRANSACTION")
        try:
            for name in ("residents", "medical_visits"):
                con.execute(f'DELETE FROM "{name}".data WHERE person_id = ?', [person])
            neighbour = _exact(con, plan)
        finally:
            con.execute("ROLLBACK")
        groups = set(full) | set(neighbour)
        for p in plan.primitives:
            if p.kind == "quantile":
                moved = sum(
                    abs(full.get(g, {}).get(k, 0) - neighbour.get(g, {}).get(k, 0))
                    for g in groups
                    for k in set(full.get(g, {})) | set(neighbour.get(g, {}))
                    if isinstance(k, tuple) and k[0] == p.id
                )
            else:
                moved = sum(
                    abs((full.get(g, {}).get(p.id) or 0) - (neighbour.get(g, {}).get(p.id) or 0)) for g in groups
                )
            assert moved <= p.sensitivity, f"{p.id} moved by {moved} > {p.sensitivity} removing {person}"
