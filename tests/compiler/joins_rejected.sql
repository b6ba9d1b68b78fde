-- title: private datasets joined on a dimension
-- rule: from_clause
-- expect: something other than its privacy unit
SELECT COUNT(*) FROM residents r JOIN enterprises e ON r.district = e.district;
-- title: private datasets of one domain joined on a non-unit column
-- rule: from_clause
-- expect: something other than its privacy unit
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.age = m.cost;
-- title: person and enterprise units equated
-- rule: from_clause
-- expect: different domains
SELECT COUNT(*) FROM residents r JOIN enterprises e ON r.person_id = e.enterprise_id;
-- title: different domains joined on their units
-- rule: from_clause
-- expect: different domains
SELECT COUNT(*) FROM social_insurance s JOIN enterprises e ON s.person_id = e.enterprise_id;
-- title: the census sample with the city registry
-- rule: from_clause
-- expect: different domains
SELECT COUNT(*) FROM residents r JOIN pums_pid p ON r.person_id = p.pid;
-- title: RIGHT JOIN
-- rule: from_clause
-- expect: RIGHT JOIN
SELECT COUNT(*) FROM residents r RIGHT JOIN medical_visits m ON r.person_id = m.person_id;
-- title: FULL JOIN
-- rule: from_clause
-- expect: FULL JOIN
SELECT COUNT(*) FROM residents r FULL JOIN medical_visits m ON r.person_id = m.person_id;
-- title: CROSS JOIN
-- rule: from_clause
-- expect: without ON
SELECT COUNT(*) FROM residents r CROSS JOIN medical_visits m;
-- title: comma join with the condition in WHERE
-- rule: from_clause
-- expect: without ON
SELECT COUNT(*) FROM residents r, medical_visits m WHERE r.person_id = m.person_id;
-- title: JOIN USING
-- rule: from_clause
-- expect: USING
SELECT COUNT(*) FROM residents JOIN medical_visits USING (person_id);
-- title: NATURAL JOIN
-- rule: from_clause
-- expect: without ON
SELECT COUNT(*) FROM residents NATURAL JOIN medical_visits;
-- title: unit equality hidden behind OR
-- rule: from_clause
-- expect: something other than its privacy unit
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id OR r.age > 0;
-- title: self-join without aliases
-- rule: from_clause
-- expect: twice
SELECT COUNT(*) FROM residents JOIN residents ON residents.person_id = residents.person_id;
-- title: public table first
-- rule: from_clause
-- expect: public dataset
SELECT COUNT(*) FROM district_reference d JOIN residents r ON r.district = d.district;
-- title: public table joined on a private identifier
-- rule: from_clause
-- expect: identifier
SELECT COUNT(*) FROM residents r JOIN district_reference d ON r.person_id = d.population;
-- title: public table without an equality
-- rule: from_clause
-- expect: without an equality
SELECT COUNT(*) FROM residents r JOIN district_reference d ON r.age > d.land_area_km2;
-- title: ambiguous column in a join
-- rule: known_columns
-- expect: Qualify it
SELECT district, COUNT(*) FROM residents r JOIN district_reference d ON r.district = d.district GROUP BY district;
-- title: unknown qualifier
-- rule: from_clause
-- expect: names no relation
SELECT COUNT(x.cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id;
-- title: joined identifier in the output
-- rule: no_identifiers
-- expect: identifier column 'person_id'
SELECT m.person_id, COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY m.person_id;
-- title: filter on a joined identifier
-- rule: no_identifiers
-- expect: targets single persons
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id WHERE m.person_id = 7;
-- title: five relations
-- rule: from_clause
-- expect: More than 4 relations
SELECT COUNT(*) FROM residents a JOIN medical_visits b ON a.person_id = b.person_id JOIN social_insurance c ON c.person_id = a.person_id JOIN medical_visits d ON d.person_id = a.person_id JOIN social_insurance e ON e.person_id = a.person_id;
-- title: pre-aggregation not grouped by the unit
-- rule: preaggregate
-- expect: not grouped by the privacy unit
SELECT AVG(s.total) FROM (SELECT department, SUM(cost) AS total FROM medical_visits GROUP BY department) AS s;
-- title: pre-aggregation grouped by a non-constant dimension
-- rule: preaggregate
-- expect: not declared constant
SELECT AVG(s.total) FROM (SELECT person_id, hospital, SUM(cost) AS total FROM medical_visits GROUP BY person_id, hospital) AS s;
-- title: pre-aggregation without an alias
-- rule: preaggregate
-- expect: without an alias
SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id);
-- title: pre-aggregated value without a name
-- rule: preaggregate
-- expect: needs a name
SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) FROM medical_visits GROUP BY person_id) AS s;
-- title: pre-aggregation of an unbounded column
-- rule: preaggregate
-- expect: public bounds
SELECT AVG(s.x) FROM (SELECT person_id, SUM(hospital) AS x FROM medical_visits GROUP BY person_id) AS s;
-- title: pre-aggregation with a window
-- rule: preaggregate
-- expect: windows
SELECT AVG(s.x) FROM (SELECT person_id, SUM(cost) OVER () AS x FROM medical_visits GROUP BY person_id) AS s;
-- title: pre-aggregation with HAVING
-- rule: preaggregate
-- expect: HAVING
SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) AS x FROM medical_visits GROUP BY person_id HAVING SUM(cost) > 5) AS s;
-- title: pre-aggregation with a nested subquery
-- rule: preaggregate
-- expect: cannot nest
SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) AS x FROM medical_visits WHERE cost > (SELECT 1) GROUP BY person_id) AS s;
-- title: pre-aggregation over a table function
-- rule: preaggregate
-- expect: allowlist
SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) AS x FROM read_csv('/etc/passwd') GROUP BY person_id) AS s;
-- title: pre-aggregation of the public table
-- rule: preaggregate
-- expect: public dataset
SELECT COUNT(*) FROM (SELECT district, SUM(population) AS p FROM district_reference GROUP BY district) AS s;
-- title: pre-aggregation without the unit in its output
-- rule: preaggregate
-- expect: without person_id
SELECT AVG(s.total) FROM (SELECT SUM(cost) AS total FROM medical_visits GROUP BY person_id) AS s;
-- title: pre-aggregation filtering on the unit
-- rule: no_identifiers
-- expect: targets single persons
SELECT AVG(s.total) FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits WHERE person_id = 3 GROUP BY person_id) AS s;
-- title: pre-aggregation with an expression instead of an aggregate
-- rule: preaggregate
-- expect: COUNT, SUM, AVG, MIN or MAX
SELECT AVG(s.x) FROM (SELECT person_id, SUM(cost) * 2 AS x FROM medical_visits GROUP BY person_id) AS s;
-- title: the unit of a pre-aggregation in the output
-- rule: no_identifiers
-- expect: identifier column 'person_id'
SELECT s.person_id, COUNT(*) FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id) AS s GROUP BY s.person_id;
-- title: a pre-aggregation joined on something else
-- rule: from_clause
-- expect: something other than its privacy unit
SELECT COUNT(*) FROM residents r JOIN (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) AS s ON r.age = s.n;
-- title: a public table's column in the output without grouping by it
-- rule: no_row_level_output
-- expect: Add d.population to GROUP BY
SELECT d.district, COUNT(*) / d.population FROM residents r JOIN district_reference d ON r.district = d.district GROUP BY d.district;
-- title: a private measure as a key, also beside a public table
-- rule: group_by_dimensions
-- expect: GROUP BY on the measure 'monthly_income'
SELECT r.monthly_income, COUNT(*) FROM residents r JOIN district_reference d ON r.district = d.district GROUP BY r.monthly_income;
