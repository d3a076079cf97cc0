"""Bronze -> Silver -> Gold in DuckDB, with the semantics of spark_apps/transforms.py.

Every column list, cast, normaliser and quarantine rule is derived from the contract, in the
contract's order, exactly as `parse_events` derives them for Spark, and Gold's columns as
`spark_apps.features.build_features` derives them. Outputs are Parquet files with the
tables the Spark stages write (Silver customers, quarantine, the GX batch; Gold features) and the
same figures (bronze_in, quarantined per reason, duplicates, accepted, silver_rows, gold_rows).

Known edge cases where DuckDB and Spark could differ (none occurs in generated data; the bench
checks equality on every run): a JSON object repeating a key (Spark keeps the last value, DuckDB's
json_extract the first); `$` before a trailing newline (Java regex matches, RE2 does not); casts of
texts like "42.5" to int (Spark truncates, DuckDB rounds); non-UTF-8 bytes (Spark may still parse
them, DuckDB counts them as unparseable).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import duckdb

from mdp.core.contract import UNKNOWN_FIELD, UNPARSEABLE, Column, Contract, Rule, load_contract

SQL_TYPES = {"string": "VARCHAR", "int": "INTEGER", "double": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMPTZ"}
BRONZE_META = ["source", "topic", "partition", "offset", "ingest_ts", "ingest_date", "ingest_hour"]
QUARANTINE_KEY = ["source", "topic", "partition", "offset", "ingest_date", "ingest_hour"]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _normalise(expr: str, c: Column) -> str:
    for step in c.normalise:
        expr = {"trim": "trim({})", "lower": "lower({})", "upper": "upper({})"}[step].format(expr)
    return expr


def _failure(rule: Rule, c: Column, raw: str, typed: str, skew_hours: int) -> str:
    """SQL that is true when the row breaks the rule: the same branches as transforms._failure."""
    if rule.kind == "not_null":
        return f"{raw} IS NULL"
    if rule.kind == "type":
        return f"({raw} IS NOT NULL AND {typed} IS NULL)"
    if rule.kind == "regex":
        return f"({typed} IS NOT NULL AND NOT regexp_matches({typed}, {lit(c.regex)}))"
    if rule.kind == "in_set":
        return f"({typed} IS NOT NULL AND {typed} NOT IN ({', '.join(lit(v) for v in c.allowed)}))"
    if rule.kind == "between":
        low = f"{typed} < {lit(c.min)}" if c.min is not None else "false"
        high = f"{typed} > {lit(c.max)}" if c.max is not None else "false"
        return f"({typed} IS NOT NULL AND ({low} OR {high}))"
    if rule.kind == "not_future":
        return f"({typed} IS NOT NULL AND CAST({typed} AS TIMESTAMPTZ) > ingest_ts + INTERVAL {int(skew_hours)} HOURS)"
    raise ValueError(f"no DuckDB check for rule kind {rule.kind!r}")


def parse_sql(bronze_files: list[str], contract: Contract) -> str:
    """SELECT of Bronze rows -> one row per message: Bronze metadata, value, typed columns, _reasons."""
    files = "[" + ", ".join(lit(f) for f in bronze_files) + "]"
    meta = ", ".join(q(m) for m in BRONZE_META)
    paths = "[" + ", ".join(lit("$." + q(c.name)) for c in contract.columns) + "]"
    known = "[" + ", ".join(lit(n) for n in contract.names) + "]"
    raw_cols = ", ".join(f"_vals[{i + 1}] AS {q('_raw_' + c.name)}" for i, c in enumerate(contract.columns))
    typed_cols = []
    for c in contract.columns:
        expr = _normalise(q("_raw_" + c.name), c)
        typed_cols.append(f"{expr if c.type == 'string' else f'TRY_CAST({expr} AS {SQL_TYPES[c.type]})'} AS {q(c.name)}")
    checks = [(UNPARSEABLE, "_not_object")]
    if contract.unknown_fields == "quarantine":
        checks.append((UNKNOWN_FIELD, "_unknown"))
    for rule in contract.rules():
        c = contract.column(rule.column)
        checks.append((rule.code, _failure(rule, c, q("_raw_" + c.name), q(c.name), contract.max_future_skew_hours)))
    reasons = "list_filter([" + ", ".join(f"CASE WHEN {cond} THEN {lit(code)} END" for code, cond in checks) + "], lambda x: x IS NOT NULL)"
    return f"""
    WITH src AS (
        SELECT {meta}, value, try(decode(value)) AS _txt
        FROM read_parquet({files}, hive_partitioning = true, hive_types_autocast = false)
    ), obj AS (
        SELECT *, CASE WHEN json_valid(_txt) AND json_type(_txt) = 'OBJECT' THEN _txt::JSON END AS _j FROM src
    ), raw AS (
        SELECT {meta}, value, _j IS NULL AS _not_object,
               coalesce(len(list_filter(json_keys(_j), lambda k: NOT list_contains({known}, k))) > 0, false) AS _unknown,
               {raw_cols}
        FROM (SELECT *, json_extract_string(_j, {paths}) AS _vals FROM obj)
    ), typed AS (
        SELECT *, {', '.join(typed_cols)} FROM raw
    )
    SELECT {meta}, value, {', '.join(q(n) for n in contract.names)},
           CASE WHEN _not_object THEN [{lit(UNPARSEABLE)}] ELSE {reasons} END AS _reasons
    FROM typed
    """


def _gold_value(value) -> str:
    return ("TRUE" if value else "FALSE") if isinstance(value, bool) else lit(value)


def _days_since(column: str) -> str:
    return f"CAST(CAST(as_of AS DATE) - CAST({q(column)} AS DATE) AS INTEGER)"


def _gold_feature(name: str, role: str, contract: Contract) -> str:
    """One feature's SQL, with the meaning spark_apps/features.py gives it."""
    derived = {d.name: d for d in contract.derived}
    if name in derived:
        d = derived[name]
        if d.kind == "days_since":
            return f"coalesce({_days_since(d.column)}, {_days_since(d.fallback)})" if d.fallback else _days_since(d.column)
        if d.kind == "is_present":
            return f"({q(d.column)} IS NOT NULL)" if d.feature == "boolean" else f"CAST({q(d.column)} IS NOT NULL AS INTEGER)"
        raise ValueError(f"derived.{d.name}: no DuckDB expression for kind {d.kind!r}")
    if role == "boolean" and contract.column(name).type != "boolean":
        return f"({q(name)} <> 0)"
    return q(name)


def gold_sql(silver: str, contract: Contract) -> str:
    """build_features (spark_apps/features.py) generated from the contract: the identifier, the
    features by role and the derived ones, the label as 0/1, as_of; tombstoned entities left out."""
    as_of = q(contract.event_time or "_ingest_ts")
    label = contract.label
    features = ", ".join(f"{_gold_feature(n, role, contract)} AS {q(n)}" for n, role, _ in contract.features())
    where = ""
    if contract.tombstone:
        where = f"WHERE {q(contract.tombstone.column)} IS DISTINCT FROM {lit(contract.tombstone.value)}"
    return f"""
    WITH a AS (SELECT max({as_of}) AS as_of FROM {silver})
    SELECT {q(contract.primary_key)}, {features},
           CAST({q(label.column)} = {_gold_value(label.positive)} AS INTEGER) AS {q(label.column)},
           as_of
    FROM {silver} CROSS JOIN a
    {where}
    """


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _copy(con, select: str, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({select}) TO {lit(str(path / 'part-0.parquet'))} (FORMAT parquet, COMPRESSION zstd)")


def bronze_to_silver(con, bronze_files: list[str], out: Path, contract: Contract | None = None, existing_silver: str | None = None) -> dict:
    """The bronze_to_silver stage's work: Silver customers, quarantine and batch, plus its figures."""
    contract = contract or load_contract()
    eid, pk, t = q(contract.event_id), q(contract.primary_key), q(contract.event_time)
    con.execute(f"CREATE OR REPLACE TEMP TABLE parsed AS {parse_sql(bronze_files, contract)}")
    bronze_in = con.execute("SELECT count(*) FROM parsed").fetchone()[0]
    reasons = dict(con.execute("SELECT _reasons[1], count(*) FROM parsed WHERE len(_reasons) > 0 GROUP BY 1").fetchall())
    # mark_duplicates: the first delivery (ingest_ts, partition, offset; Spark's ascending NULLS FIRST) wins.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE marked AS
        SELECT * EXCLUDE (value, _reasons),
               row_number() OVER (PARTITION BY {eid} ORDER BY ingest_ts NULLS FIRST, "partition" NULLS FIRST, "offset" NULLS FIRST) > 1 AS _dup
        FROM parsed WHERE len(_reasons) = 0
    """)
    duplicates, accepted = con.execute("SELECT count(*) FILTER (_dup), count(*) FILTER (NOT _dup) FROM marked").fetchone()
    names = ", ".join(q(n) for n in contract.names)
    rows = f"""SELECT {names}, source AS _source, "partition" AS _partition, "offset" AS _offset, ingest_ts AS _ingest_ts
               FROM marked WHERE NOT _dup"""
    if existing_silver:
        rows = f"SELECT * FROM read_parquet({lit(existing_silver + '/*.parquet')}) UNION ALL BY NAME {rows}"
    # latest_state: an event id delivered again keeps its first delivery (Spark's ascending NULLS FIRST),
    # then per customer the max by (event time, offset, event id), DESC NULLS LAST.
    first = "_ingest_ts NULLS FIRST, _source NULLS FIRST, _partition NULLS FIRST, _offset NULLS FIRST"
    state = f"""
        SELECT * FROM (SELECT * FROM ({rows}) QUALIFY row_number() OVER (PARTITION BY {eid} ORDER BY {first}) = 1)
        QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY {t} DESC NULLS LAST, _offset DESC NULLS LAST, {eid} DESC NULLS LAST) = 1
    """
    _copy(con, state, out / "customers")
    meta = ", ".join(q(m) for m in BRONZE_META)
    quarantine = f"""
        SELECT {meta}, value, _reasons[1] AS reason, _reasons AS reasons FROM parsed WHERE len(_reasons) > 0
        QUALIFY row_number() OVER (PARTITION BY {', '.join(q(k) for k in QUARANTINE_KEY)}) = 1
    """
    _copy(con, quarantine, out / "quarantine")
    _copy(con, f"SELECT {names} FROM parsed WHERE NOT list_contains(_reasons, {lit(UNPARSEABLE)})", out / "batch")
    silver_rows = con.execute(f"SELECT count(*) FROM read_parquet({lit(str(out / 'customers' / '*.parquet'))})").fetchone()[0]
    con.execute("DROP TABLE parsed; DROP TABLE marked")
    return {
        "bronze_in": bronze_in,
        "quarantined": sum(reasons.values()),
        "duplicates": duplicates,
        "accepted": accepted,
        "silver_rows": silver_rows,
        "quarantine_reasons": dict(sorted(reasons.items())),
    }


def silver_to_gold(con, silver_dir: Path, out: Path, contract: Contract | None = None) -> dict:
    contract = contract or load_contract()
    silver = f"read_parquet({lit(str(silver_dir / '*.parquet'))})"
    _copy(con, gold_sql(silver, contract), out / "customer_features")
    rows = con.execute(f"SELECT count(*) FROM read_parquet({lit(str(out / 'customer_features' / '*.parquet'))})").fetchone()[0]
    return {"gold_rows": rows}


def run(bronze_files: list[str], out: Path, threads: int | None = None) -> dict:
    """Both stages, timed like the Spark stages. Returns {'stages': {name: seconds}, 'figures': ...}."""
    contract = load_contract()
    con = connect(threads)
    t0 = time.perf_counter()
    silver = bronze_to_silver(con, bronze_files, out / "silver", contract)
    t1 = time.perf_counter()
    gold = silver_to_gold(con, out / "silver" / "customers", out / "gold", contract)
    t2 = time.perf_counter()
    con.close()
    return {
        "stages": {"bronze_to_silver": t1 - t0, "silver_to_gold": t2 - t1},
        "figures": {**silver, **gold},
        "outputs": {
            "silver": str(out / "silver" / "customers"),
            "quarantine": str(out / "silver" / "quarantine"),
            "gold": str(out / "gold" / "customer_features"),
        },
    }
