-- title: inner join of two person datasets on the unit
SELECT r.district, COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district;
-- title: join with AVG of the joined measure
SELECT r.district, AVG(m.cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district;
-- title: join, unit on the right of the equality
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON m.person_id = r.person_id;
-- title: explicit INNER JOIN
SELECT COUNT(*) FROM residents r INNER JOIN social_insurance s ON r.person_id = s.person_id;
-- title: LEFT JOIN keeps persons without matches
SELECT r.district, COUNT(*) FROM residents r LEFT JOIN social_insurance s ON r.person_id = s.person_id GROUP BY r.district;
-- title: LEFT JOIN counting matched persons
SELECT COUNT(DISTINCT s.person_id) FROM residents r LEFT JOIN social_insurance s ON r.person_id = s.person_id;
-- title: join with an extra condition in ON
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id AND m.cost > 100;
-- title: join with WHERE over both sides
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id WHERE r.age >= 65 AND m.department = 'surgery';
-- title: three person datasets
SELECT r.district, COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id JOIN social_insurance s ON s.person_id = r.person_id GROUP BY r.district;
-- title: join grouped by a key of the right side
SELECT m.hospital, COUNT(DISTINCT r.person_id) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY m.hospital;
-- title: join grouped by keys of both sides
SELECT r.sex, m.department, COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.sex, m.department;
-- title: join with a median of the joined measure
SELECT r.district, MEDIAN(m.cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district;
-- title: join with a bucketed key
SELECT r.age // 10 * 10 AS decade, SUM(m.cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY decade;
-- title: join with unqualified unambiguous columns
SELECT district, AVG(cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY district;
-- title: join with private keys (dates)
SELECT s.month, COUNT(*) FROM residents r JOIN social_insurance s ON r.person_id = s.person_id GROUP BY s.month;
-- title: join with ORDER BY and LIMIT on the release
SELECT r.district, COUNT(*) AS n FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district ORDER BY n DESC LIMIT 3;
-- title: public reference table joined on a dimension
SELECT d.district_zh, COUNT(*) FROM residents r JOIN district_reference d ON r.district = d.district GROUP BY d.district_zh;
-- title: per-capita rate with a public measure
SELECT r.district, COUNT(*) / AVG(d.population) AS share FROM residents r JOIN district_reference d ON r.district = d.district GROUP BY r.district;
-- title: public table joined to a join
SELECT d.district_zh, AVG(m.cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id JOIN district_reference d ON d.district = r.district GROUP BY d.district_zh;
-- title: LEFT JOIN to a public table
SELECT r.district, COUNT(*) FROM residents r LEFT JOIN district_reference d ON r.district = d.district GROUP BY r.district;
-- title: enterprises joined to public districts
SELECT d.district_zh, AVG(e.employees) FROM enterprises e JOIN district_reference d ON e.district = d.district GROUP BY d.district_zh;
-- title: per-person totals, then their median
SELECT MEDIAN(s.total) FROM (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) AS s;
-- title: per-person totals, their mean and a quantile
SELECT AVG(s.total), QUANTILE_CONT(s.total, 0.9) FROM (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) s;
-- title: per-person counts of visits, bucketed
SELECT s.visits, COUNT(*) FROM (SELECT person_id, COUNT(*) AS visits FROM medical_visits GROUP BY person_id) AS s GROUP BY s.visits;
-- title: per-person average and maximum
SELECT AVG(s.mean_cost), AVG(s.top_cost) FROM (SELECT person_id, AVG(cost) AS mean_cost, MAX(cost) AS top_cost FROM medical_visits GROUP BY person_id) AS s;
-- title: per-person totals with an explicit clamp
SELECT AVG(s.total) FROM (SELECT person_id, LEAST(GREATEST(SUM(contribution), 0), 50000) AS total FROM social_insurance GROUP BY person_id) AS s;
-- title: per-person totals with a filter inside
SELECT COUNT(*), AVG(s.total) FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits WHERE department = 'surgery' GROUP BY person_id) AS s;
-- title: per-person totals filtered outside
SELECT COUNT(*) FROM (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) AS s WHERE s.total > 10000;
-- title: per-person totals joined to residents
SELECT r.district, AVG(s.total) FROM residents r JOIN (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) AS s ON r.person_id = s.person_id GROUP BY r.district;
-- title: visits of persons with high contributions (three relations)
SELECT r.district, SUM(m.cost) FROM medical_visits m JOIN residents r ON m.person_id = r.person_id JOIN (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) s ON s.person_id = m.person_id WHERE s.total > 1000 GROUP BY r.district;
-- title: pre-aggregation grouped with a constant dimension
SELECT s.district, AVG(s.income) FROM (SELECT person_id, district, SUM(monthly_income) AS income FROM residents GROUP BY person_id, district) AS s GROUP BY s.district;
-- title: join with HAVING on a released aggregate
SELECT r.district, COUNT(*) AS n FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district HAVING COUNT(*) > 10;
-- title: a conditional count over joined rows
SELECT r.district, SUM(CASE WHEN m.cost > 1000 THEN 1 ELSE 0 END) AS costly, AVG(m.cost * 0.8) AS reimbursed FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district;
-- title: a FILTER over a pre-aggregation
SELECT COUNT(*) FILTER (WHERE s.total > 1000) AS high, AVG(LEAST(s.total, 5000)) FROM (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) AS s;
-- title: a per-capita rate from the public table (its columns are keys and exact in arithmetic)
SELECT d.district, COUNT(*) * 1000.0 / d.population AS per_1000 FROM residents r JOIN district_reference d ON r.district = d.district GROUP BY d.district, d.population;
-- title: a public table's measure as the only key
SELECT d.land_area_km2, AVG(CASE WHEN r.age >= 60 THEN 1 ELSE 0 END) AS share FROM residents r LEFT JOIN district_reference d ON r.district = d.district GROUP BY d.land_area_km2;
