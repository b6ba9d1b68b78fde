"""The demo city: a deterministic synthetic Xiamen with residents, social insurance,
enterprises, medical visits and a public table of its six districts.

Every value is a pure function of (seed, row, salt): uniforms come from DuckDB's ``hash`` and
normals from Box-Muller over two of them. So the generator needs no state, each dataset is one
streaming ``COPY (SELECT ... FROM range(n)) TO ... (FORMAT parquet)``, memory stays bounded at
any scale, and a person's attributes can be recomputed wherever they are needed (a
resident's income drives her social-insurance contributions without a join). This is synthetic
data generation, not DP noise: predictable pseudo-randomness is exactly what we want here.

The distributions are chosen to exercise the sandbox, not to be an accurate model of the
city: incomes are right-skewed with rare outliers above the policy's clamp bound, one person
may have many rows (social insurance, medical visits with a long tail), enterprise sizes are
heavy-tailed, and every categorical column only takes values from its policy's public keys.

    python -m sandbox.demo OUT_DIR --scale 20000 --seed 2026
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb

__all__ = [
    "DATASETS",
    "DEPARTMENTS",
    "DISTRICTS",
    "HOSPITALS",
    "INDUSTRIES",
    "build_demo",
    "summarize",
]

DATASETS = ("residents", "social_insurance", "enterprises", "medical_visits", "district_reference")

# (name, Chinese name, resident population at the 7th national census (1 Nov 2020),
#  land area in km^2 as listed by the Xiamen Statistical Yearbook; areas are approximate)
DISTRICTS: tuple[tuple[str, str, int, float], ...] = (
    ("Siming", "思明区", 1_073_315, 84.00),
    ("Huli", "湖里区", 1_036_974, 73.77),
    ("Jimei", "集美区", 1_036_203, 274.29),
    ("Haicang", "海沧区", 582_519, 173.71),
    ("Tong'an", "同安区", 855_920, 669.41),
    ("Xiang'an", "翔安区", 579_039, 425.43),
)

# (sector, share of enterprises, typical revenue per employee in CNY, size multiplier)
INDUSTRIES: tuple[tuple[str, float, float, float], ...] = (
    ("retail", 0.22, 400_000, 1.0),
    ("wholesale", 0.18, 1_200_000, 1.0),
    ("software", 0.10, 500_000, 1.5),
    ("manufacturing", 0.10, 600_000, 3.0),
    ("catering", 0.10, 120_000, 1.2),
    ("logistics", 0.08, 500_000, 2.0),
    ("construction", 0.07, 400_000, 2.5),
    ("tourism", 0.06, 150_000, 1.2),
    ("real_estate", 0.05, 2_000_000, 1.0),
    ("finance", 0.04, 1_500_000, 1.5),
)

HOSPITALS = (
    "Zhongshan Hospital of Xiamen University",
    "First Affiliated Hospital of Xiamen University",
    "Xiamen Cardiovascular Hospital",
    "Xiamen Hospital of Traditional Chinese Medicine",
    "Xiamen Maternal and Child Health Hospital",
    "Xiamen Children's Hospital",
    "Xiamen Third Hospital",
    "Xiang'an Hospital of Xiamen University",
)

# (department, typical cost of one visit in CNY)
DEPARTMENTS: tuple[tuple[str, float], ...] = (
    ("internal_medicine", 350),
    ("surgery", 1_500),
    ("pediatrics", 250),
    ("obstetrics_gynecology", 500),
    ("emergency", 600),
    ("cardiology", 800),
    ("traditional_chinese_medicine", 200),
    ("ophthalmology", 300),
)

# Shares of enterprises by district: the island (Siming, Huli) hosts more firms than people.
_ENTERPRISE_SHARES = (0.24, 0.27, 0.16, 0.10, 0.12, 0.11)
# Hospital a resident of each district uses for everyday care (indexes into HOSPITALS).
_LOCAL_HOSPITAL = (0, 1, 0, 1, 6, 7)

# Age pyramid (share, first age, last age), roughly Xiamen's young 2020 profile.
_AGE_BANDS = (
    (0.156, 0, 14),
    (0.120, 15, 24),
    (0.240, 25, 34),
    (0.190, 35, 44),
    (0.198, 45, 59),
    (0.075, 60, 74),
    (0.019, 75, 89),
    (0.002, 90, 100),
)
_HOUSEHOLD_SIZES = (0.25, 0.27, 0.22, 0.14, 0.07, 0.03, 0.013, 0.007)
_DISTRICT_INCOME = (0.15, 0.10, 0.0, 0.0, -0.12, -0.15)  # log-income shift by district


def _lit(text: str) -> str:
    """A SQL string literal for one of *our* constants or paths (never user text)."""
    return "'" + text.replace("'", "''") + "'"


def _pick(u: str, labels: Sequence[str], weights: Sequence[float]) -> str:
    """CASE expression mapping a uniform in [0, 1) to a label with the given weights."""
    total = sum(weights)
    arms, acc = [], 0.0
    for label, weight in zip(labels[:-1], weights[:-1], strict=True):
        acc += weight / total
        arms.append(f"WHEN {u} < {acc!r} THEN {label}")
    return f"(CASE {' '.join(arms)} ELSE {labels[-1]} END)"


def _by(value: str, keys: Sequence[str], results: Sequence[object]) -> str:
    """CASE expression looking `value` up in a small table of constants."""
    arms = " ".join(
        f"WHEN {value} = {k} THEN {_lit(r) if isinstance(r, str) else repr(r)}"
        for k, r in zip(keys, results, strict=True)
    )
    return f"(CASE {arms} END)"


_DISTRICT_LITS = [_lit(d[0]) for d in DISTRICTS]
_HOSPITAL_LITS = [_lit(h) for h in HOSPITALS]
_DEPARTMENT_LITS = [_lit(d[0]) for d in DEPARTMENTS]
_INDUSTRY_LITS = [_lit(i[0]) for i in INDUSTRIES]


def _macros(seed: int) -> list[str]:
    """Pure functions of (row, salt). `U` is uniform on (0, 1), `N` standard normal."""
    age_band = _pick("U(pid, 0, 'age_band')", [str(i) for i in range(len(_AGE_BANDS))],
                     [b[0] for b in _AGE_BANDS])
    band_lo = _by("band", [str(i) for i in range(len(_AGE_BANDS))], [b[1] for b in _AGE_BANDS])
    band_hi = _by("band", [str(i) for i in range(len(_AGE_BANDS))], [b[2] for b in _AGE_BANDS])
    income_shift = _by("district", _DISTRICT_LITS, _DISTRICT_INCOME)
    district = _pick("U(pid, 0, 'district')", _DISTRICT_LITS, [d[2] for d in DISTRICTS])
    return [
        # DuckDB's multi-argument hash XORs the arguments' hashes, which would correlate
        # U(x, 'a') with U(x, 'b'); so chain full 64-bit mixes instead. The (seed, salt) key
        # is a constant the optimizer folds.
        f"CREATE TEMP MACRO U(a, b, salt) AS "
        f"((hash(xor(hash(xor(a::UBIGINT, hash(hash({seed}::BIGINT, salt)))), b::UBIGINT))"
        f" >> 11)::DOUBLE + 0.5) / 9007199254740992.0",
        "CREATE TEMP MACRO N(a, b, salt) AS "
        "sqrt(-2.0 * ln(U(a, b, salt || ':r'))) * cos(2.0 * pi() * U(a, b, salt || ':t'))",
        # --- one resident -------------------------------------------------------------
        f"CREATE TEMP MACRO xm_district(pid) AS {district}",
        f"CREATE TEMP MACRO xm_age_in_band(pid, band) AS "
        f"({band_lo} + floor(U(pid, 0, 'age') * ({band_hi} - {band_lo} + 1)))::INTEGER",
        f"CREATE TEMP MACRO xm_age(pid) AS xm_age_in_band(pid, {age_band})",
        "CREATE TEMP MACRO xm_sex(pid) AS CASE WHEN U(pid, 0, 'sex') < 0.527 THEN 'M' ELSE 'F' END",
        # Log-normal earnings peaking in mid-career, students and retirees mostly lower or
        # zero, children zero; 0.2% of earners get a 8x-40x windfall (the outliers that
        # the policy's bound clamps).
        f"""CREATE TEMP MACRO xm_income(pid, age, district) AS round(CASE
              WHEN age < 16 THEN 0.0
              WHEN age < 23 AND U(pid, 0, 'student') < 0.55 THEN 0.0
              WHEN age < 60 AND U(pid, 0, 'jobless') < 0.06 THEN 0.0
              WHEN age >= 60 AND U(pid, 0, 'pension') < 0.15 THEN 0.0
              ELSE exp(CASE
                  WHEN age < 23 THEN ln(4500) + 0.5 * N(pid, 0, 'income')
                  WHEN age < 60 THEN ln(7500) + {income_shift}
                                     + 0.35 * (1 - ((age - 45) / 22.0) ^ 2)
                                     + 0.75 * N(pid, 0, 'income')
                  ELSE ln(4200) + 0.45 * N(pid, 0, 'income') END)
                * CASE WHEN U(pid, 0, 'windfall') < 0.002
                       THEN exp(ln(8) + U(pid, 0, 'windfall_size') * ln(5)) ELSE 1 END
              END, 2)""",
    ]


def _residents(scale: int) -> str:
    household = _pick("U(pid, 0, 'household')", [str(i + 1) for i in range(8)], _HOUSEHOLD_SIZES)
    return f"""
        SELECT pid AS person_id, district, age, sex,
               {household}::INTEGER AS household_size,
               xm_income(pid, age, district)::DOUBLE AS monthly_income
        FROM (SELECT pid, xm_district(pid) AS district, xm_age(pid) AS age, xm_sex(pid) AS sex
              FROM (SELECT range + 1 AS pid FROM range({scale})))"""


def _social_insurance(scale: int) -> str:
    # Insured: most working-age earners; 1..24 consecutive monthly contributions
    # (mean ~8: many short spells, some full two-year records). The contribution is 28% of
    # the income within the statutory base (floor 2030, cap 34000 CNY) with a +-2% jitter, so
    # it stays below the policy's public bound of 10000 whatever the income.
    return f"""
        SELECT pid AS person_id,
               (DATE '2024-01-01' + to_months(start + k))::DATE AS month,
               round(0.28 * greatest(2030.0, least(income, 34000.0))
                     * (0.98 + 0.04 * U(pid, k, 'contribution')), 2)::DOUBLE AS contribution
        FROM (SELECT pid, income, start, unnest(range(months)) AS k
              FROM (SELECT pid, income, months,
                           floor(U(pid, 0, 'si_start') * (25 - months))::INTEGER AS start
                    FROM (SELECT pid, income,
                                 least(24, 1 + floor(24 * U(pid, 0, 'si_months') ^ 2.2))::INTEGER
                                   AS months
                          FROM (SELECT pid, age, xm_income(pid, age, xm_district(pid)) AS income
                                FROM (SELECT range + 1 AS pid, xm_age(range + 1) AS age
                                      FROM range({scale})))
                          WHERE age BETWEEN 18 AND 64 AND income > 0
                            AND U(pid, 0, 'insured') < 0.78)))"""


def _enterprises(scale: int) -> str:
    n = max(1, scale // 20)
    names = [i[0] for i in INDUSTRIES]
    industry = _pick("U(eid, 0, 'industry')", _INDUSTRY_LITS, [i[1] for i in INDUSTRIES])
    district = _pick("U(eid, 0, 'district')", _DISTRICT_LITS, _ENTERPRISE_SHARES)
    per_employee = _by("industry", [_lit(x) for x in names], [i[2] for i in INDUSTRIES])
    size = _by("industry", [_lit(x) for x in names], [i[3] for i in INDUSTRIES])
    return f"""
        SELECT eid AS enterprise_id, district, industry, employees,
               round(employees * exp(ln({per_employee}) + 0.9 * N(eid, 0, 'revenue')), -2)::DOUBLE
                 AS annual_revenue,
               (2025 - floor(46 * U(eid, 0, 'founded') ^ 1.8))::INTEGER AS founded_year
        FROM (SELECT eid, district, industry,
                     -- Pareto(alpha 1.15): most firms are tiny, a few employ thousands
                     least(200000, greatest(1, floor({size} * 1.6
                           * U(eid, 0, 'employees') ^ (-1 / 1.15))))::INTEGER AS employees
              FROM (SELECT range + 1 AS eid, {district} AS district, {industry} AS industry
                    FROM range({n}) t(range)))"""


def _medical_visits(scale: int) -> str:
    # Everyone's departments; children mostly see pediatrics, women 18-45 also obstetrics.
    general = _pick("U(pid, k, 'dept')",
                    [_lit(d) for d, _ in DEPARTMENTS
                     if d not in ("pediatrics", "obstetrics_gynecology")],
                    [30, 12, 14, 8, 6, 5])
    cost_base = _by("department", _DEPARTMENT_LITS, [d[1] for d in DEPARTMENTS])
    local = _by("district", _DISTRICT_LITS, [HOSPITALS[i] for i in _LOCAL_HOSPITAL])
    hospital = f"""CASE
          WHEN department = 'cardiology' AND U(pid, k, 'hosp') < 0.7 THEN {_HOSPITAL_LITS[2]}
          WHEN department = 'traditional_chinese_medicine' AND U(pid, k, 'hosp') < 0.7
               THEN {_HOSPITAL_LITS[3]}
          WHEN department = 'obstetrics_gynecology' AND U(pid, k, 'hosp') < 0.6
               THEN {_HOSPITAL_LITS[4]}
          WHEN department = 'pediatrics' AND U(pid, k, 'hosp') < 0.5 THEN {_HOSPITAL_LITS[5]}
          WHEN U(pid, k, 'hosp') < 0.85 THEN {local}
          ELSE {_pick("U(pid, k, 'hosp_any')", _HOSPITAL_LITS, [1] * len(HOSPITALS))} END"""
    # Visits per person: Lomax (Pareto II, alpha 2.2), scaled by an age-dependent need, so
    # most people have 0-3 visits and a few chronic patients have 50+ (capped at 400).
    need = """CASE WHEN age < 6 THEN 1.6 WHEN age < 18 THEN 0.8 WHEN age < 45 THEN 0.8
                   WHEN age < 65 THEN 1.2 ELSE 2.2 END"""
    return f"""
        SELECT pid AS person_id, {hospital} AS hospital, department,
               (DATE '2024-01-01' + floor(731 * U(pid, k, 'date'))::INTEGER)::DATE AS visit_date,
               round(exp(ln({cost_base}) + 1.0 * N(pid, k, 'cost'))
                     * CASE WHEN U(pid, k, 'inpatient') < 0.01
                            THEN exp(ln(10) + U(pid, k, 'stay') * ln(6)) ELSE 1 END, 2)::DOUBLE
                 AS cost
        FROM (SELECT pid, k, district,
                     CASE WHEN age < 14 AND U(pid, k, 'peds') < 0.8 THEN 'pediatrics'
                          WHEN sex = 'F' AND age BETWEEN 18 AND 45 AND U(pid, k, 'obgyn') < 0.3
                               THEN 'obstetrics_gynecology'
                          ELSE {general} END AS department
              FROM (SELECT pid, age, sex, district, unnest(range(visits)) AS k
                    FROM (SELECT pid, age, sex, district,
                                 least(400, floor(2.9 * ({need})
                                       * (U(pid, 0, 'visits') ^ (-1 / 2.2) - 1)))::INTEGER AS visits
                          FROM (SELECT range + 1 AS pid, xm_age(range + 1) AS age,
                                       xm_sex(range + 1) AS sex, xm_district(range + 1) AS district
                                FROM range({scale})))
                    WHERE visits > 0))"""


def _district_reference() -> str:
    rows = ", ".join(
        f"({_lit(name)}, {_lit(zh)}, {pop}::BIGINT, {area}::DOUBLE)"
        for name, zh, pop, area in DISTRICTS
    )
    return f"""SELECT * FROM (VALUES {rows})
               t(district, district_zh, population, land_area_km2)"""


def build_demo(out_dir: Path, scale: int = 20_000, seed: int = 2026) -> dict[str, Path]:
    """Write the demo city's Parquet files into `out_dir` and return them by dataset name.

    The same (scale, seed) gives byte-identical files with the same DuckDB version on the
    same platform (the values go through libm's exp/ln/cos). Memory is bounded by DuckDB's
    `memory_limit`, not by `scale`: every dataset streams from `range()` straight into its
    file, with no sort and no join, so 10M residents peak at well under 2 GiB.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer (number of residents), got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**63:
        raise ValueError(f"seed must be a 64-bit integer, got {seed!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    queries = {
        "residents": _residents(scale),
        "social_insurance": _social_insurance(scale),
        "enterprises": _enterprises(scale),
        "medical_visits": _medical_visits(scale),
        "district_reference": _district_reference(),
    }
    written: dict[str, Path] = {}
    spill = out_dir / ".duckdb_tmp"
    con = duckdb.connect(config={
        "memory_limit": "1GB",
        "threads": 2,
        "preserve_insertion_order": True,
        "temp_directory": str(spill),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    })
    try:
        for statement in _macros(seed):
            con.execute(statement)
        for name, query in queries.items():
            final = out_dir / f"{name}.parquet"
            partial = out_dir / f".{name}.parquet.partial"
            try:
                con.execute(
                    f"COPY ({query}) TO {_lit(str(partial))} "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
                )
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, final)  # readers never see a half-written file
            written[name] = final
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return written


def summarize(paths: dict[str, Path]) -> list[tuple[str, int, int]]:
    """(dataset, rows, bytes) for each file, read from Parquet metadata only."""
    con = duckdb.connect()
    try:
        rows = []
        for name, path in paths.items():
            (count,) = con.execute(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", [str(path)]
            ).fetchone() or (0,)
            rows.append((name, int(count), path.stat().st_size))
        return rows
    finally:
        con.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo", description="Build the deterministic demo city of Xiamen."
    )
    parser.add_argument("out_dir", type=Path, help="directory for the Parquet files")
    parser.add_argument("--scale", type=int, default=20_000, help="residents (default 20000)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = build_demo(args.out_dir, scale=args.scale, seed=args.seed)
    elapsed = time.perf_counter() - started
    print(f"Demo city of Xiamen, scale {args.scale:,}, seed {args.seed}, built in {elapsed:.1f} s")
    for name, rows, size in summarize(paths):
        print(f"  {name:<20} {rows:>13,} rows {size / 2**20:>10.1f} MiB  {paths[name]}")


if __name__ == "__main__":
    main()
