-- title: select star
-- rule: allowed_nodes
-- expect: SELECT *
SELECT * FROM residents;
-- title: non-aggregate output
-- rule: no_row_level_output
-- expect: without aggregates
SELECT age FROM residents;
-- title: non-aggregate next to an aggregate
-- rule: no_row_level_output
-- expect: non-aggregated column 'sex'
SELECT district, sex, COUNT(*) FROM residents GROUP BY district;
-- title: identifier in output
-- rule: no_identifiers
-- expect: identifier column 'person_id'
SELECT person_id, COUNT(*) FROM residents GROUP BY district;
-- title: group by identifier
-- rule: no_identifiers
-- expect: grouping by an identifier
SELECT COUNT(*) FROM social_insurance GROUP BY person_id;
-- title: where on identifier (targeting)
-- rule: no_identifiers
-- expect: targets single persons
SELECT AVG(monthly_income) FROM residents WHERE person_id = 42;
-- title: count distinct of an expression
-- rule: aggregates
-- expect: COUNT(DISTINCT ...) takes one column
SELECT COUNT(DISTINCT age // 10) FROM residents;
-- title: count distinct of two columns
-- rule: aggregates
-- expect: COUNT(DISTINCT ...) takes one column
SELECT COUNT(DISTINCT district, sex) FROM residents;
-- title: min of a text column
-- rule: aggregates
-- expect: it needs a number
SELECT MIN(district) FROM residents;
-- title: max of an expression without bounds
-- rule: aggregates
-- expect: no public bounds
SELECT MAX(monthly_income / age) FROM residents;
-- title: max of a distinct
-- rule: aggregates
-- expect: DISTINCT in
SELECT MAX(DISTINCT age) FROM residents;
-- title: arg_max
-- rule: allowed_nodes
-- expect: ARG_MAX
SELECT ARG_MAX(district, monthly_income) FROM residents;
-- title: list
-- rule: allowed_nodes
-- expect: LIST/ARRAY_AGG returns row values
SELECT LIST(age) FROM residents;
-- title: string_agg
-- rule: allowed_nodes
-- expect: STRING_AGG returns row values
SELECT STRING_AGG(district, ',') FROM residents;
-- title: histogram
-- rule: allowed_nodes
-- expect: HISTOGRAM
SELECT HISTOGRAM(age) FROM residents;
-- title: mode
-- rule: allowed_nodes
-- expect: MODE returns one exact value
SELECT MODE(age) FROM residents;
-- title: first
-- rule: allowed_nodes
-- expect: FIRST returns one row's value
SELECT FIRST(monthly_income) FROM residents;
-- title: any_value
-- rule: allowed_nodes
-- expect: ANY_VALUE
SELECT ANY_VALUE(monthly_income) FROM residents;
-- title: window function
-- rule: allowed_nodes
-- expect: window function
SELECT SUM(monthly_income) OVER (PARTITION BY district) FROM residents;
-- title: union
-- rule: single_select
-- expect: set operation UNION
SELECT COUNT(*) FROM residents UNION SELECT COUNT(*) FROM enterprises;
-- title: except
-- rule: single_select
-- expect: set operation EXCEPT
SELECT COUNT(*) FROM residents EXCEPT SELECT COUNT(*) FROM residents WHERE age > 3;
-- title: subquery in from that is not a per-unit pre-aggregation
-- rule: preaggregate
-- expect: not grouped by the privacy unit
SELECT COUNT(*) FROM (SELECT * FROM residents) AS t;
-- title: subquery in where
-- rule: no_subqueries
-- expect: A subquery
SELECT COUNT(*) FROM residents WHERE age > (SELECT AVG(age) FROM residents);
-- title: CTE
-- rule: no_subqueries
-- expect: WITH clause
WITH r AS (SELECT * FROM residents) SELECT COUNT(*) FROM r;
-- title: data-modifying CTE
-- rule: no_subqueries
-- expect: WITH clause
WITH x AS (DELETE FROM residents RETURNING *) SELECT COUNT(*) FROM x;
-- title: having on an exact aggregate not released
-- rule: having_on_released
-- expect: not in the SELECT list
SELECT district, AVG(age) FROM residents GROUP BY district HAVING COUNT(*) > 5;
-- title: read_csv table function
-- rule: from_clause
-- expect: table function
SELECT COUNT(*) FROM read_csv('/etc/passwd');
-- title: read_parquet table function
-- rule: from_clause
-- expect: table function
SELECT COUNT(*) FROM read_parquet('/work/main/var/datasets/residents/data.parquet');
-- title: glob table function
-- rule: from_clause
-- expect: table function
SELECT COUNT(*) FROM glob('/*');
-- title: quoted file path as a table
-- rule: from_clause
-- expect: path
SELECT COUNT(*) FROM '/etc/passwd';
-- title: insert
-- rule: single_select
-- expect: INSERT statement
INSERT INTO residents VALUES (1);
-- title: copy
-- rule: single_select
-- expect: statement
COPY residents TO '/tmp/x.csv';
-- title: attach
-- rule: single_select
-- expect: statement
ATTACH '/tmp/x.db' AS x;
-- title: set a setting
-- rule: single_select
-- expect: statement
SET enable_external_access = true;
-- title: pragma
-- rule: single_select
-- expect: statement
PRAGMA database_list;
-- title: multiple statements
-- rule: parse
-- expect: 2 statements
SELECT COUNT(*) FROM residents; SELECT COUNT(*) FROM enterprises;
-- title: error() function
-- rule: allowed_nodes
-- expect: ERROR()
SELECT COUNT(*) FROM residents WHERE error('x') IS NULL;
-- title: query() function
-- rule: allowed_nodes
-- expect: QUERY()
SELECT COUNT(*) FROM residents WHERE query('select 1') IS NULL;
-- title: setseed
-- rule: allowed_nodes
-- expect: SETSEED()
SELECT COUNT(*) FROM residents WHERE setseed(0.5) IS NULL;
-- title: random
-- rule: allowed_nodes
-- expect: RAND
SELECT COUNT(*) FROM residents WHERE random() < 0.5;
-- title: repeat
-- rule: allowed_nodes
-- expect: REPEAT
SELECT COUNT(*) FROM residents WHERE repeat('x', 1000000000) = district;
-- title: current_setting
-- rule: allowed_nodes
-- expect: CURRENT_SETTING
SELECT COUNT(*) FROM residents WHERE current_setting('threads') = '1';
-- title: unknown dataset with suggestion
-- rule: from_clause
-- expect: Did you mean 'residents'
SELECT COUNT(*) FROM residentz;
-- title: unknown column with suggestion
-- rule: known_columns
-- expect: Did you mean 'monthly_income'
SELECT AVG(monthly_incme) FROM residents;
-- title: comma join
-- rule: from_clause
-- expect: without ON
SELECT COUNT(*) FROM residents, enterprises;
-- title: schema-qualified dataset
-- rule: from_clause
-- expect: qualified name
SELECT COUNT(*) FROM main.residents;
-- title: sum of text
-- rule: aggregates
-- expect: needs a number
SELECT SUM(district) FROM residents;
-- title: sum of a condition
-- rule: aggregates
-- expect: SUM(CASE WHEN age > 60 THEN 1 ELSE 0 END)
SELECT SUM(age > 60) FROM residents;
-- title: sum of an expression whose divisor can be 0
-- rule: aggregates
-- expect: the divisor age can be 0
SELECT SUM(monthly_income / age) FROM residents;
-- title: average of text read as a number has no bounds
-- rule: aggregates
-- expect: LEAST(GREATEST(
SELECT AVG(TRY_CAST(district AS DOUBLE)) FROM residents;
-- title: sum of a function without derivable bounds
-- rule: aggregates
-- expect: no bounds the sandbox can derive
SELECT SUM(LENGTH(district)) FROM residents;
-- title: EXP of a constant beyond the largest double (found by the backend fuzzer: an internal OverflowError)
-- rule: aggregates
-- expect: EXP of a large value overflows
SELECT SUM(EXP(36266.345)) FROM residents;
-- title: a clamp on one side only leaves the other unbounded
-- rule: aggregates
-- expect: no public bounds
SELECT SUM(GREATEST(monthly_income / age, 0)) FROM residents;
-- title: sum of a value that is always NULL
-- rule: aggregates
-- expect: always NULL
SELECT SUM(CASE WHEN age > 60 THEN NULL END) FROM residents;
-- title: a distinct count with FILTER
-- rule: aggregates
-- expect: Move the condition into WHERE
SELECT COUNT(DISTINCT person_id) FILTER (WHERE age > 60) FROM residents;
-- title: TOP n PERCENT is not a LIMIT
-- rule: parse
-- expect: could not be parsed
SELECT TOP 5 PERCENT district, COUNT(*) FROM residents GROUP BY district;
-- title: TOP together with LIMIT
-- rule: parse
-- expect: TOP together with LIMIT
SELECT TOP 3 district, COUNT(*) FROM residents GROUP BY district LIMIT 2;
-- title: quantile level out of range
-- rule: aggregates
-- expect: strictly between 0 and 1
SELECT QUANTILE_CONT(age, 1.5) FROM residents;
-- title: quantile level not a constant
-- rule: aggregates
-- expect: strictly between 0 and 1
SELECT QUANTILE_CONT(age, age) FROM residents;
-- title: aggregate in where
-- rule: where_is_row_level
-- expect: in WHERE
SELECT COUNT(*) FROM residents WHERE COUNT(*) > 3;
-- title: nested aggregate
-- rule: aggregates
-- expect: nested aggregate
SELECT SUM(COUNT(*)) FROM residents;
-- title: group by a measure
-- rule: group_by_dimensions
-- expect: GROUP BY on the measure 'monthly_income'
SELECT monthly_income, COUNT(*) FROM residents GROUP BY monthly_income;
-- title: select distinct of an aggregate
-- rule: single_select
-- expect: SELECT DISTINCT
SELECT DISTINCT COUNT(*) FROM residents;
-- title: select distinct on
-- rule: single_select
-- expect: SELECT DISTINCT
SELECT DISTINCT ON (district) district, age FROM residents;
-- title: keys alone without GROUP BY
-- rule: no_row_level_output
-- expect: without aggregates
SELECT district FROM residents;
-- title: no aggregates at all, a column that is not a key
-- rule: no_row_level_output
-- expect: non-aggregated column 'age'
SELECT district, age FROM residents GROUP BY district;
-- title: order by ... limit 1 without aggregates
-- rule: no_row_level_output
-- expect: without aggregates
SELECT monthly_income FROM residents ORDER BY monthly_income DESC LIMIT 1;
-- title: limit not a constant
-- rule: order_and_limit
-- expect: non-negative integer constant
SELECT district, COUNT(*) FROM residents GROUP BY district LIMIT -1;
-- title: syntax error with position
-- rule: parse
-- expect: could not be parsed
SELECT COUNT(* FROM residents;
-- title: empty query
-- rule: parse
-- expect: empty query
   ;
-- title: public reference table alone
-- rule: from_clause
-- expect: public dataset
SELECT SUM(population) FROM district_reference;
-- title: epsilon-free disguise: count of identifier column
-- rule: no_identifiers
-- expect: identifier column 'person_id'
SELECT COUNT(person_id) FROM residents;
-- title: ROLLUP
-- rule: allowed_nodes
-- expect: ROLLUP
SELECT district, COUNT(*) FROM residents GROUP BY ROLLUP (district);
-- title: qualify
-- rule: single_select
-- expect: QUALIFY
SELECT district, COUNT(*) FROM residents GROUP BY district QUALIFY COUNT(*) > 1;
-- title: order by an unreleased aggregate
-- rule: order_and_limit
-- expect: only use released values
SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY AVG(age);
-- title: non-aggregated column next to an aggregate without GROUP BY
-- rule: no_row_level_output
-- expect: non-aggregated column 'monthly_income'
SELECT monthly_income, COUNT(*) FROM residents;
