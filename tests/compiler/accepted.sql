-- title: total count
SELECT COUNT(*) FROM residents;
-- title: grouped count over public keys
SELECT district, COUNT(*) FROM residents GROUP BY district;
-- title: count distinct units
SELECT COUNT(DISTINCT person_id) FROM social_insurance;
-- title: count distinct values of a non-unit column
SELECT COUNT(DISTINCT educ), COUNT(DISTINCT age) FROM pums_null;
-- title: count distinct values per group, next to distinct units
SELECT hospital, COUNT(DISTINCT department), COUNT(DISTINCT person_id) FROM medical_visits GROUP BY hospital;
-- title: keys alone over a public key set (free)
SELECT district, sex FROM residents GROUP BY district, sex;
-- title: keys alone with a filter, over a key set derived from public domains
SELECT age // 10 AS decade FROM pums_null WHERE income > 20000 GROUP BY decade;
-- title: keys alone over private keys pass the threshold
SELECT FLOOR(s.total / 1000) AS band FROM (SELECT person_id, SUM(contribution) AS total FROM social_insurance GROUP BY person_id) AS s GROUP BY band;
-- title: select distinct is the key-only group by
SELECT DISTINCT hospital FROM medical_visits;
-- title: min and max are quantiles near the extremes
SELECT MIN(age), MAX(monthly_income) FROM residents;
-- title: min and max per group, and arithmetic over them
SELECT sex, MIN(income) AS low, MAX(income) - MIN(income) AS spread FROM pums_null GROUP BY sex;
-- title: correlation and regression of two bounded columns
SELECT CORR(monthly_income, age) AS r, REGR_SLOPE(monthly_income, age) AS slope, REGR_INTERCEPT(monthly_income, age) AS intercept FROM residents WHERE age >= 18;
-- title: covariances and the regression count per group
SELECT district, COVAR_SAMP(monthly_income, age), COVAR_POP(age, monthly_income), REGR_COUNT(monthly_income, age) FROM residents GROUP BY district;
-- title: correlation next to other aggregates, with arithmetic
SELECT sex, CORR(income, age) * 100 AS r_percent, AVG(income), COUNT(*) FROM pums_null GROUP BY sex;
-- title: count of a column skips nulls
SELECT COUNT(income) FROM pums_null;
-- title: sum of a measure
SELECT SUM(monthly_income) FROM residents;
-- title: average of a measure
SELECT AVG(monthly_income) AS mean_income FROM residents;
-- title: variance and standard deviation
SELECT VAR_SAMP(monthly_income), STDDEV(monthly_income) FROM residents;
-- title: variance spelled VARIANCE and population forms
SELECT VARIANCE(age), VAR_POP(age), STDDEV_POP(age), STDDEV_SAMP(age) FROM residents;
-- title: median
SELECT MEDIAN(monthly_income) FROM residents;
-- title: quantile_cont with a constant level
SELECT QUANTILE_CONT(monthly_income, 0.9) AS p90 FROM residents;
-- title: several aggregates grouped
SELECT district, COUNT(*), SUM(monthly_income), AVG(monthly_income) FROM residents GROUP BY district;
-- title: table alias and qualified columns
SELECT r.district, AVG(r.age) FROM residents AS r GROUP BY r.district;
-- title: alias without AS
SELECT r.sex, COUNT(*) FROM residents r GROUP BY r.sex;
-- title: where on a dimension
SELECT COUNT(*) FROM residents WHERE district = 'Siming';
-- title: where on a measure
SELECT COUNT(*) FROM residents WHERE monthly_income > 20000;
-- title: where with IN, BETWEEN and LIKE
SELECT COUNT(*) FROM residents WHERE district IN ('Huli', 'Jimei') AND age BETWEEN 18 AND 65 AND sex LIKE 'F%';
-- title: where with IS NULL
SELECT COUNT(*) FROM pums_null WHERE income IS NULL;
-- title: where with NOT and OR
SELECT COUNT(*) FROM residents WHERE NOT (age < 18 OR age > 64);
-- title: bucketing with FLOOR
SELECT FLOOR(age / 10) * 10 AS decade, COUNT(*) FROM residents GROUP BY decade;
-- title: bucketing with integer division
SELECT age // 10 AS decade, COUNT(*) FROM residents GROUP BY 1;
-- title: bucketing with CASE
SELECT CASE WHEN age < 18 THEN 'child' WHEN age < 65 THEN 'adult' ELSE 'senior' END AS band, COUNT(*) FROM residents GROUP BY band;
-- title: group by ordinal
SELECT district, sex, COUNT(*) FROM residents GROUP BY 1, 2;
-- title: two public keys
SELECT district, sex, AVG(monthly_income) FROM residents GROUP BY district, sex;
-- title: private keys (dates) go through threshold selection
SELECT month, COUNT(*) FROM social_insurance GROUP BY month;
-- title: date part bucketing with YEAR
SELECT YEAR(month) AS y, SUM(contribution) FROM social_insurance GROUP BY y;
-- title: date_part function
SELECT date_part('month', visit_date) AS m, COUNT(*) FROM medical_visits GROUP BY m;
-- title: EXTRACT
SELECT EXTRACT(year FROM visit_date) AS y, COUNT(*) FROM medical_visits GROUP BY y;
-- title: date_trunc
SELECT date_trunc('year', month) AS y, COUNT(*) FROM social_insurance GROUP BY y;
-- title: arithmetic over aggregates
SELECT SUM(monthly_income) / COUNT(*) * 12 AS yearly FROM residents;
-- title: ratio of two aggregates with ROUND
SELECT hospital, ROUND(SUM(cost) / COUNT(*), 2) AS per_visit FROM medical_visits GROUP BY hospital;
-- title: order by aggregate and limit
SELECT hospital, COUNT(*) AS visits FROM medical_visits GROUP BY hospital ORDER BY visits DESC LIMIT 3;
-- title: order by ordinal
SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY 2 DESC;
-- title: order by key
SELECT industry, AVG(employees) FROM enterprises GROUP BY industry ORDER BY industry;
-- title: having on a released aggregate
SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING COUNT(*) > 100;
-- title: having on an output name
SELECT district, AVG(monthly_income) AS mean_income FROM residents GROUP BY district HAVING mean_income > 1000;
-- title: limit with offset
SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY district LIMIT 2 OFFSET 1;
-- title: enterprise privacy unit
SELECT industry, SUM(annual_revenue), MEDIAN(employees) FROM enterprises GROUP BY industry;
-- title: bounded integer dimension as public keys
SELECT household_size, COUNT(*) FROM residents GROUP BY household_size;
-- title: founded year bucket
SELECT founded_year // 10 * 10 AS decade, COUNT(*) FROM enterprises GROUP BY decade;
-- title: multi-row units with group cap
SELECT department, COUNT(*), AVG(cost) FROM medical_visits GROUP BY department;
-- title: PUMS with nulls
SELECT sex, COUNT(*), AVG(income), MEDIAN(age) FROM pums_null GROUP BY sex;
-- title: PUMS one row per person
SELECT educ, COUNT(*) FROM pums_pid GROUP BY educ;
-- title: PUMS race histogram ordered
SELECT race, COUNT(*) AS n FROM pums_pid GROUP BY race ORDER BY n DESC;
-- title: COALESCE and CAST in a key
SELECT COALESCE(married, 'unknown') AS m, COUNT(*) FROM pums_null GROUP BY m;
-- title: string function in a filter
SELECT COUNT(*) FROM medical_visits WHERE lower(department) = 'surgery';
-- title: quoted identifiers
SELECT "district", COUNT(*) FROM "residents" GROUP BY "district";
-- title: trailing semicolon and comments
SELECT COUNT(*) -- how many residents
FROM residents; /* done */
-- title: keys in arithmetic with aggregates
SELECT age // 10 * 10 AS decade, COUNT(*) * 100.0 / 5000 AS share FROM residents GROUP BY decade;
-- title: unquoted names are case-insensitive, as in DuckDB
SELECT District, COUNT(*) AS N FROM RESIDENTS GROUP BY DISTRICT ORDER BY n DESC;
-- title: a share is the average of a 0/1 condition
SELECT district, AVG(CASE WHEN age >= 60 THEN 1 ELSE 0 END) AS share_60_plus FROM residents GROUP BY district;
-- title: a conditional sum and count
SELECT SUM(CASE WHEN sex = 'F' THEN monthly_income ELSE 0 END) AS women, SUM(CASE WHEN age >= 60 THEN 1 ELSE 0 END) AS seniors FROM residents;
-- title: a count of a condition's matches (CASE without ELSE)
SELECT COUNT(CASE WHEN age < 18 THEN 1 END) AS minors FROM residents;
-- title: aggregates of arithmetic over a bounded column
SELECT AVG(monthly_income * 12) AS annual, STDDEV(age * 2 + 1) FROM residents;
-- title: a missing value counted as 0
SELECT SUM(COALESCE(income, 0)), AVG(COALESCE(income, 0)) FROM pums_null;
-- title: the analyst's own clamp tightens the bounds
SELECT AVG(LEAST(GREATEST(monthly_income, 1000), 50000)) AS clamped FROM residents;
-- title: the analyst's clamp bounds a quotient
SELECT SUM(LEAST(GREATEST(monthly_income / household_size, 0), 20000)) FROM residents;
-- title: FILTER clauses
SELECT district, COUNT(*) FILTER (WHERE age >= 60) AS seniors, SUM(monthly_income) FILTER (WHERE sex = 'F') AS women_income, AVG(age) FILTER (WHERE household_size > 2) FROM residents GROUP BY district;
-- title: IF, CAST and a median of an expression
SELECT AVG(IF(household_size > 3, 1.0, 0.0)) AS large, MEDIAN(monthly_income / 1000) AS k, SUM(CAST(age AS DOUBLE) / 10) FROM residents;
-- title: a share as arithmetic over two aggregates
SELECT SUM(CASE WHEN age >= 65 THEN 1 ELSE 0 END) * 1.0 / COUNT(*) AS share FROM residents;
-- title: a share on PUMS codes
SELECT educ, AVG(CASE WHEN married = '1' THEN 1.0 ELSE 0.0 END) AS married_share FROM pums_pid GROUP BY educ;
-- title: VAR and STD are the sample forms
SELECT VAR(age), STD(age) AS sd FROM residents;
-- title: TOP n is LIMIT n
SELECT TOP 3 district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY n DESC;
-- title: TOP (n) with parentheses, after DISTINCT-free SELECT
SELECT TOP (2) sex, AVG(age) AS mean_age FROM residents GROUP BY sex ORDER BY mean_age;
