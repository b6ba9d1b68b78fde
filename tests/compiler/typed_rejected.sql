-- title: text column against an integer
-- rule: types
-- expect: district is text: write the constant in quotes
SELECT COUNT(*) FROM residents WHERE age = 95 AND district = 1;
-- title: text column against an integer column
-- rule: types
-- expect: Convert one side explicitly
SELECT COUNT(*) FROM residents WHERE district = age;
-- title: date against a string that is not a date
-- rule: types
-- expect: is not a date of the form 'YYYY-MM-DD'
SELECT COUNT(*) FROM medical_visits WHERE visit_date = 'notadate';
-- title: integers in an IN list on text without numeric keys
-- rule: types
-- expect: write the constant in quotes
SELECT COUNT(*) FROM residents WHERE sex IN (1, 2);
-- title: a number against a string that is not a number
-- rule: types
-- expect: is not a number
SELECT COUNT(*) FROM residents WHERE age > 'old';
-- title: text as a condition
-- rule: types
-- expect: a condition must be true or false
SELECT COUNT(*) FROM residents WHERE district;
-- title: a number as a condition
-- rule: types
-- expect: a condition must be true or false
SELECT COUNT(*) FROM residents WHERE age AND sex = 'F';
-- title: a type error in ON
-- rule: types
-- expect: hospital is text
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id AND m.hospital = 3;
-- title: a type error inside a pre-aggregation
-- rule: types
-- expect: department is text
SELECT COUNT(*) FROM (SELECT person_id, SUM(cost) AS c FROM medical_visits WHERE department = 5 GROUP BY person_id) AS s;
-- title: an unknown date part
-- rule: types
-- expect: it is not a date part the sandbox knows
SELECT COUNT(*) FROM medical_visits WHERE date_part('foo', visit_date) = 1;
-- title: an unknown EXTRACT part
-- rule: types
-- expect: it is not a date part the sandbox knows
SELECT COUNT(*) FROM medical_visits WHERE EXTRACT(epoch FROM visit_date) > 0;
-- title: an unknown date_trunc unit
-- rule: types
-- expect: it is not a unit the sandbox knows
SELECT COUNT(*) FROM medical_visits WHERE date_trunc('fortnight', visit_date) IS NULL;
-- title: an unknown strftime specifier
-- rule: types
-- expect: The strftime specifier %Q
SELECT COUNT(*) FROM medical_visits WHERE strftime(visit_date, '%Q') = 'x';
-- title: a strftime specifier DuckDB refuses when the statement runs (found comparing engines)
-- rule: types
-- expect: The strftime specifier %e
SELECT COUNT(*) FROM medical_visits WHERE strftime(visit_date, '%e') = 'x';
-- title: an empty strftime format, which DuckDB refuses when the statement runs (found comparing engines)
-- rule: types
-- expect: it must be a short string with at least one character
SELECT COUNT(*) FROM medical_visits WHERE strftime(visit_date, '') = 'x';
-- title: a third strftime argument, which sqlglot would drop and DuckDB refuses
-- rule: types
-- expect: this form of strftime is not supported
SELECT COUNT(*) FROM medical_visits WHERE strftime(visit_date, '%Y', 'x') = '2024';
-- title: a trailing percent sign in a strftime format
-- rule: types
-- expect: The strftime specifier %
SELECT COUNT(*) FROM medical_visits WHERE strftime(visit_date, 'year %') = 'x';
-- title: a format that is not a constant
-- rule: types
-- expect: it must be a constant written in the query
SELECT COUNT(*) FROM medical_visits WHERE strftime(visit_date, hospital) = 'x';
-- title: a ROUND scale out of range
-- rule: types
-- expect: it must be a whole number from -30 to 30
SELECT COUNT(*) FROM residents WHERE ROUND(monthly_income, 400) > 0;
-- title: a SUBSTRING length below zero
-- rule: types
-- expect: it cannot be negative
SELECT COUNT(*) FROM residents WHERE SUBSTRING(district, 1, -1) = '';
-- title: a SUBSTRING start that is not a constant
-- rule: types
-- expect: it must be a constant written in the query
SELECT COUNT(*) FROM residents WHERE SUBSTRING(district, age, 2) = 'Si';
-- title: a LIKE pattern that is not a constant
-- rule: types
-- expect: it must be a constant written in the query
SELECT COUNT(*) FROM residents WHERE district LIKE sex;
-- title: integer division of doubles
-- rule: types
-- expect: Write FLOOR(monthly_income / 2)
SELECT COUNT(*) FROM residents WHERE monthly_income // 2 > 0;
-- title: date arithmetic
-- rule: types
-- expect: Group or filter on date parts instead
SELECT COUNT(*) FROM medical_visits WHERE visit_date + 1 > '2024-01-01';
-- title: a date part of text
-- rule: types
-- expect: it needs a DATE or TIMESTAMP
SELECT COUNT(*) FROM residents WHERE YEAR(district) = 2020;
-- title: a conversion that never succeeds
-- rule: types
-- expect: never converts to DATE
SELECT COUNT(*) FROM residents WHERE CAST(age AS DATE) IS NULL;
-- title: a conversion to DECIMAL
-- rule: types
-- expect: Write e.g. CAST(monthly_income AS DOUBLE)
SELECT COUNT(*) FROM residents WHERE CAST(monthly_income AS DECIMAL(10, 2)) > 0;
-- title: CASE results of different types
-- rule: types
-- expect: it mixes constants of types
SELECT CASE WHEN age < 18 THEN 'child' ELSE 1 END AS b, COUNT(*) FROM residents GROUP BY b;
-- title: a date constant that does not exist
-- rule: types
-- expect: is not a date
SELECT COUNT(*) FROM medical_visits WHERE visit_date = DATE '2024-02-30';
-- title: arithmetic on text
-- rule: types
-- expect: it needs a number
SELECT COUNT(*) FROM residents WHERE district + 1 > 0;
-- title: expressions nested too deeply
-- rule: bounded_depth
-- expect: nested more than 100 levels
SELECT COUNT(*) FROM residents WHERE age = 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 0;
-- title: an identifier filter in ON
-- rule: no_identifiers
-- expect: only privacy units equated across relations
SELECT COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id AND r.person_id = 9418;
-- title: a column renamed like the unit is not the unit
-- rule: from_clause
-- expect: on something other than its privacy unit
SELECT COUNT(*) FROM (SELECT person_id AS pid, age AS person_id, COUNT(*) AS n FROM residents GROUP BY person_id, age) AS s JOIN medical_visits m ON s.person_id = m.person_id;
-- title: a pre-aggregation grouped by a column renamed like the unit
-- rule: preaggregate
-- expect: not grouped by the privacy unit
SELECT COUNT(*) FROM (SELECT age AS person_id, COUNT(*) AS n FROM residents GROUP BY age) AS s;
-- title: a date constant where a number is compared (found by the fuzzer: an internal error)
-- rule: types
-- expect: is not a number
SELECT COUNT(*) FROM enterprises WHERE NULLIF(employees, DATE '2020-02-29') IN (0);
-- title: a text column whose keys are not 0/1 codes is not a condition
-- rule: types
-- expect: a condition must be true or false
SELECT COUNT(*) FROM pums_pid WHERE educ;
