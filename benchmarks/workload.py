"""A city analyst's questions over the demo city, each with the plain-DuckDB truth over the raw
demo files (every row, no bounding, no clamping, no noise): the workload of benchmarks/honest.py.

Each entry: (class, title, sandbox SQL, truth SQL). The truth SQL reads `{residents}`,
`{social_insurance}`, `{medical_visits}`, `{enterprises}` and `{district_reference}` (the raw
Parquet files) and returns the same columns in the same order, keys first.
"""

from __future__ import annotations

__all__ = ["WORKLOAD"]

WORKLOAD: list[tuple[str, str, str, str]] = [
    # -- grouped counts, public keys -------------------------------------------------------
    (
        "count, public keys",
        "residents by district",
        "SELECT district, COUNT(*) FROM residents GROUP BY district",
        "SELECT district, COUNT(*) FROM {residents} GROUP BY district",
    ),
    (
        "count, public keys",
        "residents by sex and household size",
        "SELECT sex, household_size, COUNT(*) FROM residents GROUP BY sex, household_size",
        "SELECT sex, household_size, COUNT(*) FROM {residents} GROUP BY sex, household_size",
    ),
    (
        "count, public keys",
        "residents by age decade",
        "SELECT age // 10 * 10 AS decade, COUNT(*) FROM residents GROUP BY decade",
        "SELECT age // 10 * 10 AS decade, COUNT(*) FROM {residents} GROUP BY decade",
    ),
    (
        "count, public keys",
        "enterprises by industry",
        "SELECT industry, COUNT(*) FROM enterprises GROUP BY industry",
        "SELECT industry, COUNT(*) FROM {enterprises} GROUP BY industry",
    ),
    (
        "count, public keys",
        "visits by department (multi-row)",
        "SELECT department, COUNT(*) FROM medical_visits GROUP BY department",
        "SELECT department, COUNT(*) FROM {medical_visits} GROUP BY department",
    ),
    (
        "count, public keys",
        "visits per month (date bounds make months public)",
        "SELECT date_trunc('month', visit_date) AS month, COUNT(*) FROM medical_visits GROUP BY month",
        "SELECT date_trunc('month', visit_date) AS month, COUNT(*) FROM {medical_visits} GROUP BY month",
    ),
    (
        "count, public keys",
        "insured persons per year",
        "SELECT YEAR(month) AS year, COUNT(DISTINCT person_id) FROM social_insurance GROUP BY year",
        "SELECT YEAR(month) AS year, COUNT(DISTINCT person_id) FROM {social_insurance} GROUP BY year",
    ),
    (
        "count, public keys",
        "seniors by district",
        "SELECT district, COUNT(*) FROM residents WHERE age >= 65 GROUP BY district",
        "SELECT district, COUNT(*) FROM {residents} WHERE age >= 65 GROUP BY district",
    ),
    # -- sums ---------------------------------------------------------------------------------
    (
        "sum",
        "contributions per year (multi-row)",
        "SELECT YEAR(month) AS year, SUM(contribution) FROM social_insurance GROUP BY year",
        "SELECT YEAR(month) AS year, SUM(contribution) FROM {social_insurance} GROUP BY year",
    ),
    (
        "sum",
        "visit costs by hospital",
        "SELECT hospital, SUM(cost) FROM medical_visits GROUP BY hospital",
        "SELECT hospital, SUM(cost) FROM {medical_visits} GROUP BY hospital",
    ),
    (
        "sum",
        "income by district",
        "SELECT district, SUM(monthly_income) FROM residents GROUP BY district",
        "SELECT district, SUM(monthly_income) FROM {residents} GROUP BY district",
    ),
    (
        "sum",
        "employees by district",
        "SELECT district, SUM(employees) FROM enterprises GROUP BY district",
        "SELECT district, SUM(employees) FROM {enterprises} GROUP BY district",
    ),
    # -- averages -------------------------------------------------------------------------------
    (
        "average",
        "income by district",
        "SELECT district, AVG(monthly_income) FROM residents GROUP BY district",
        "SELECT district, AVG(monthly_income) FROM {residents} GROUP BY district",
    ),
    (
        "average",
        "age by household size",
        "SELECT household_size, AVG(age) FROM residents GROUP BY household_size",
        "SELECT household_size, AVG(age) FROM {residents} GROUP BY household_size",
    ),
    (
        "average",
        "monthly contribution (multi-row)",
        "SELECT AVG(contribution) FROM social_insurance",
        "SELECT AVG(contribution) FROM {social_insurance}",
    ),
    (
        "average",
        "cost per visit by department",
        "SELECT department, AVG(cost) FROM medical_visits GROUP BY department",
        "SELECT department, AVG(cost) FROM {medical_visits} GROUP BY department",
    ),
    (
        "average",
        "founding year by industry",
        "SELECT industry, AVG(founded_year) FROM enterprises GROUP BY industry",
        "SELECT industry, AVG(founded_year) FROM {enterprises} GROUP BY industry",
    ),
    # -- medians and quantiles ----------------------------------------------------------------
    (
        "median",
        "age by district",
        "SELECT district, MEDIAN(age) FROM residents GROUP BY district",
        "SELECT district, MEDIAN(age) FROM {residents} GROUP BY district",
    ),
    (
        "median",
        "income",
        "SELECT MEDIAN(monthly_income) FROM residents",
        "SELECT MEDIAN(monthly_income) FROM {residents}",
    ),
    (
        "median",
        "90th percentile of visit cost",
        "SELECT QUANTILE_CONT(cost, 0.9) FROM medical_visits",
        "SELECT QUANTILE_CONT(cost, 0.9) FROM {medical_visits}",
    ),
    # -- variances ------------------------------------------------------------------------------
    (
        "variance",
        "variance of age by sex",
        "SELECT sex, VAR_SAMP(age) FROM residents GROUP BY sex",
        "SELECT sex, VAR_SAMP(age) FROM {residents} GROUP BY sex",
    ),
    (
        "variance",
        "standard deviation of income by district",
        "SELECT district, STDDEV(monthly_income) FROM residents GROUP BY district",
        "SELECT district, STDDEV(monthly_income) FROM {residents} GROUP BY district",
    ),
    # -- ratios (arithmetic over aggregates) --------------------------------------------------
    (
        "ratio",
        "income per household member",
        "SELECT district, SUM(monthly_income) / SUM(household_size) AS per_member FROM residents GROUP BY district",
        "SELECT district, SUM(monthly_income) / SUM(household_size) FROM {residents} GROUP BY district",
    ),
    (
        "ratio",
        "visits per resident by district (join)",
        "SELECT r.district, COUNT(*) / COUNT(DISTINCT r.person_id) AS visits_per_patient FROM residents r "
        "JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.district",
        "SELECT r.district, COUNT(*) / COUNT(DISTINCT r.person_id) FROM {residents} r JOIN {medical_visits} m "
        "ON r.person_id = m.person_id GROUP BY r.district",
    ),
    # -- joins ----------------------------------------------------------------------------------
    (
        "join",
        "visits by district of residence",
        "SELECT r.district, COUNT(*) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id "
        "GROUP BY r.district",
        "SELECT r.district, COUNT(*) FROM {residents} r JOIN {medical_visits} m ON r.person_id = m.person_id "
        "GROUP BY r.district",
    ),
    (
        "join",
        "visit cost by sex",
        "SELECT r.sex, SUM(m.cost) FROM residents r JOIN medical_visits m ON r.person_id = m.person_id GROUP BY r.sex",
        "SELECT r.sex, SUM(m.cost) FROM {residents} r JOIN {medical_visits} m ON r.person_id = m.person_id "
        "GROUP BY r.sex",
    ),
    (
        "join",
        "contributions by district",
        "SELECT r.district, SUM(s.contribution) FROM residents r JOIN social_insurance s ON r.person_id = s.person_id "
        "GROUP BY r.district",
        "SELECT r.district, SUM(s.contribution) FROM {residents} r JOIN {social_insurance} s "
        "ON r.person_id = s.person_id GROUP BY r.district",
    ),
    (
        "join",
        "patients over 60 by hospital",
        "SELECT m.hospital, COUNT(DISTINCT r.person_id) FROM residents r JOIN medical_visits m "
        "ON r.person_id = m.person_id WHERE r.age >= 60 GROUP BY m.hospital",
        "SELECT m.hospital, COUNT(DISTINCT r.person_id) FROM {residents} r JOIN {medical_visits} m "
        "ON r.person_id = m.person_id WHERE r.age >= 60 GROUP BY m.hospital",
    ),
    # -- pre-aggregations ---------------------------------------------------------------------
    (
        "pre-aggregation",
        "people by number of contribution months",
        "SELECT s.n AS months, COUNT(*) FROM (SELECT person_id, COUNT(*) AS n FROM social_insurance "
        "GROUP BY person_id) AS s GROUP BY months",
        "SELECT n, COUNT(*) FROM (SELECT person_id, COUNT(*) AS n FROM {social_insurance} GROUP BY person_id) "
        "GROUP BY n",
    ),
    (
        "pre-aggregation",
        "average total contribution per insured person",
        "SELECT AVG(s.total) FROM (SELECT person_id, SUM(contribution) AS total FROM social_insurance "
        "GROUP BY person_id) AS s",
        "SELECT AVG(total) FROM (SELECT person_id, SUM(contribution) AS total FROM {social_insurance} "
        "GROUP BY person_id)",
    ),
    (
        "pre-aggregation",
        "patients with more than five visits, by district",
        "SELECT r.district, COUNT(*) FROM residents r JOIN (SELECT person_id, COUNT(*) AS n FROM medical_visits "
        "GROUP BY person_id) AS v ON r.person_id = v.person_id WHERE v.n > 5 GROUP BY r.district",
        "SELECT r.district, COUNT(*) FROM {residents} r JOIN (SELECT person_id, COUNT(*) AS n FROM {medical_visits} "
        "GROUP BY person_id) v ON r.person_id = v.person_id WHERE v.n > 5 GROUP BY r.district",
    ),
    # -- private keys -------------------------------------------------------------------------
    (
        "count, public keys",
        "visits by weekday and department (date bounds: public)",
        "SELECT department, strftime(visit_date, '%a') AS weekday, COUNT(*) FROM medical_visits "
        "GROUP BY department, weekday",
        "SELECT department, strftime(visit_date, '%a'), COUNT(*) FROM {medical_visits} GROUP BY 1, 2",
    ),
    (
        "count, private keys",
        "insured persons by band of total contribution (private keys)",
        "SELECT FLOOR(s.total / 20000) * 20000 AS band, COUNT(*) FROM (SELECT person_id, SUM(contribution) AS total "
        "FROM social_insurance GROUP BY person_id) AS s GROUP BY band",
        "SELECT FLOOR(total / 20000) * 20000, COUNT(*) FROM (SELECT person_id, SUM(contribution) AS total "
        "FROM {social_insurance} GROUP BY person_id) GROUP BY 1",
    ),
    (
        "count, private keys",
        "patients by band of total visit cost (private keys)",
        "SELECT FLOOR(v.cost / 1000) * 1000 AS band, COUNT(*) FROM (SELECT person_id, SUM(cost) AS cost "
        "FROM medical_visits GROUP BY person_id) AS v GROUP BY band",
        "SELECT FLOOR(cost / 1000) * 1000, COUNT(*) FROM (SELECT person_id, SUM(cost) AS cost FROM {medical_visits} "
        "GROUP BY person_id) GROUP BY 1",
    ),
    (
        "count, private keys",
        "enterprises by founding year (integer bounds: public)",
        "SELECT founded_year, COUNT(*) FROM enterprises GROUP BY founded_year",
        "SELECT founded_year, COUNT(*) FROM {enterprises} GROUP BY founded_year",
    ),
]
