-- title: a date column against a date string (converted once, at compile time)
SELECT COUNT(*) FROM medical_visits WHERE visit_date >= '2024-01-01';
-- title: a date column against a DATE literal
SELECT COUNT(*) FROM medical_visits WHERE visit_date BETWEEN DATE '2024-01-01' AND '2024-06-30';
-- title: a number against a numeric string
SELECT COUNT(*) FROM residents WHERE age > '30';
-- title: text codes against numbers read by TRY_CAST (public keys are all numbers)
SELECT COUNT(*) FROM pums_pid WHERE educ < 2;
-- title: text codes in an IN list of numbers
SELECT sex, COUNT(*) FROM pums_pid WHERE race IN (1, 2) GROUP BY sex;
-- title: an explicit CAST of text (rendered as TRY_CAST, NULL where it does not convert)
SELECT COUNT(*) FROM residents WHERE CAST(district AS INTEGER) = 1;
-- title: TRY_CAST of text to a date
SELECT COUNT(*) FROM residents WHERE TRY_CAST(district AS DATE) IS NULL;
-- title: integer arithmetic that may overflow is guarded
SELECT COUNT(*) FROM residents WHERE age * 100000 * 100000 * 100000 * 100000 > 0;
-- title: integer division and modulo by a column
SELECT COUNT(*) FROM residents WHERE age // household_size > 3 AND age % household_size = 0;
-- title: double and integer mixed in a CASE
SELECT CASE WHEN age < 18 THEN 0 ELSE age / 3 END AS k, COUNT(*) FROM residents GROUP BY k;
-- title: parentheses keep their meaning in keys and outputs
SELECT (age + 1) * 2 AS k, SUM(monthly_income) / (COUNT(*) + 1) AS x FROM residents GROUP BY (age + 1) * 2;
-- title: a simple CASE over text
SELECT CASE sex WHEN 'F' THEN 'female' WHEN 'M' THEN 'male' END AS s, COUNT(*) FROM residents GROUP BY s;
-- title: every accepted date part
SELECT date_part('isodow', visit_date) AS d, EXTRACT(quarter FROM visit_date) AS q, COUNT(*) FROM medical_visits GROUP BY d, q;
-- title: strftime with accepted specifiers
SELECT strftime(visit_date, '%Y-%m') AS m, COUNT(*) FROM medical_visits GROUP BY m;
-- title: date_trunc keys (guarded at the ends of the date range)
SELECT date_trunc('quarter', visit_date) AS q, COUNT(*) FROM medical_visits GROUP BY q;
-- title: IS TRUE on a condition
SELECT COUNT(*) FROM residents WHERE (age > 60) IS TRUE;
-- title: NaN and infinity as constants
SELECT COUNT(*) FROM residents WHERE monthly_income <> 'NaN'::DOUBLE AND monthly_income < 'inf';
-- title: a GROUP BY name that is a column and an output alias binds to the column (as in DuckDB)
SELECT sex AS gender, educ AS sex, COUNT(*) FROM pums_pid GROUP BY sex, educ;
-- title: a long chain of AND counts as one level of nesting
SELECT COUNT(*) FROM residents WHERE age > 1 AND age > 2 AND age > 3 AND age > 4 AND age > 5 AND age > 6 AND age > 7;
-- title: the unit exposed under another name keeps its lineage
SELECT COUNT(*) FROM (SELECT person_id AS pid, SUM(cost) AS c FROM medical_visits GROUP BY person_id) AS s JOIN residents r ON s.pid = r.person_id;
-- title: a NULL cast to a number in arithmetic (found by the fuzzer: an internal error)
SELECT COUNT(*) FROM residents WHERE CAST(NULL AS INTEGER) + age > 1 OR -CAST(NULL AS BIGINT) > 1 OR ABS(CAST(NULL AS BIGINT)) > 1;
-- title: a 0/1 text code as a condition and compared with TRUE
SELECT age, married, COUNT(*) AS n, SUM(income) AS income FROM pums_pid WHERE sex = TRUE GROUP BY age, married HAVING NOT married;
