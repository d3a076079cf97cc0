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

from mdp.core.contract import UNKNOWN_FIELD, UNPARSEABLE, Column, Contract, Rule, anchored, load_contract

SQL_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
}
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


# What `trim` strips: every whitespace, line terminators included (Java's \s plus the Unicode ones).
_SPACE = r"[\t\n\x0B\f\r \x{85}\x{A0}\x{2028}\x{2029}\x{FEFF}]"


_TRIM = "^" + _SPACE + "+|" + _SPACE + r"+\z"


def _normalise(expr: str, c: Column) -> str:
    steps = {"trim": "regexp_replace({}, " + lit(_TRIM) + ", '', 'g')", "lower": "lower({})", "upper": "upper({})"}
    for step in c.normalise:
        expr = steps[step].replace("{}", expr)
    return expr


def _typed(expr: str, c: Column) -> str:
    """The value as its type, NULL where it does not cast or is one no store downstream can hold:
    text with U+0000, a date or time outside years 1-9999 (DuckDB itself reads years past 9999)."""
    if c.type == "string":
        return f"CASE WHEN NOT contains({expr}, chr(0)) THEN {expr} END"
    cast = f"TRY_CAST({expr} AS {SQL_TYPES[c.type]})"
    if c.type == "date":
        return f"CASE WHEN {cast} BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN {cast} END"
    if c.type == "timestamp":  # the day in UTC, as Spark's session sees it
        day = f"CAST(timezone('UTC', {cast}) AS DATE)"
        return f"CASE WHEN {day} BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN {cast} END"
    return cast


def _failure(rule: Rule, c: Column, raw: str, typed: str, skew_hours: int) -> str:
    """SQL that is true when the row breaks the rule: the same branches as transforms._failure."""
    if rule.kind == "not_null":
        return f"{raw} IS NULL"
    if rule.kind == "type":
        return f"({raw} IS NOT NULL AND {typed} IS NULL)"
    if rule.kind == "regex":
        return f"({typed} IS NOT NULL AND NOT regexp_matches({typed}, {lit(anchored(c.regex, 're2'))}))"
    if rule.kind == "in_set":
        return f"({typed} IS NOT NULL AND {typed} NOT IN ({', '.join(lit(v) for v in c.allowed)}))"
    if rule.kind == "between":
        low = f"{typed} < {lit(c.min)}" if c.min is not None else "false"
        high = f"{typed} > {lit(c.max)}" if c.max is not None else "false"
        return f"({typed} IS NOT NULL AND ({low} OR {high}))"
    if rule.kind == "not_future":
        return f"({typed} IS NOT NULL AND CAST({typed} AS TIMESTAMPTZ) > ingest_ts + INTERVAL {int(skew_hours)} HOURS)"
    raise ValueError(f"no DuckDB check for rule kind {rule.kind!r}")


def parse_sql(bronze_files: list[str], contract: Contract, with_file: bool = False) -> str:
    """SELECT of Bronze rows -> one row per message: Bronze metadata, value, typed columns, _reasons
    (and `_file`, the object it came from, with_file)."""
    files = "[" + ", ".join(lit(f) for f in bronze_files) + "]"
    meta = ", ".join(q(m) for m in BRONZE_META)
    paths = "[" + ", ".join(lit("$." + q(c.name)) for c in contract.columns) + "]"
    known = "[" + ", ".join(lit(n) for n in contract.names) + "]"
    raw_cols = ", ".join(f"_vals[{i + 1}] AS {q('_raw_' + c.name)}" for i, c in enumerate(contract.columns))
    typed_cols = [f"{_typed(_normalise(q('_raw_' + c.name), c), c)} AS {q(c.name)}" for c in contract.columns]
    checks = [(UNPARSEABLE, "_not_object")]
    if contract.unknown_fields == "quarantine":
        checks.append((UNKNOWN_FIELD, "_unknown"))
    t = contract.tombstone
    deleting = f"coalesce({q(t.column)} = {lit(t.value)}, false)" if t else "false"
    for rule in contract.rules():
        c = contract.column(rule.column)
        cond = _failure(rule, c, q("_raw_" + c.name), q(c.name), contract.max_future_skew_hours)
        if rule.kind == "not_null" and c.name in contract.tombstone_may_omit:
            cond = f"({cond} AND NOT {deleting})"  # a delete need not carry the entity's fields
        checks.append((rule.code, cond))
    reasons = (
        "list_filter(["
        + ", ".join(f"CASE WHEN {cond} THEN {lit(code)} END" for code, cond in checks)
        + "], lambda x: x IS NOT NULL)"
    )
    return f"""
    WITH src AS (
        SELECT {meta}, value, try(decode(value)) AS _txt{", filename AS _file" if with_file else ""}
        FROM read_parquet({files}, hive_partitioning = true, hive_types_autocast = false{", filename = true" if with_file else ""})
    ), obj AS (
        SELECT *, CASE WHEN json_valid(_txt) AND json_type(_txt) = 'OBJECT' THEN _txt::JSON END AS _j FROM src
    ), raw AS (
        SELECT {meta}, value,{" _file," if with_file else ""} _j IS NULL AS _not_object,
               coalesce(len(list_filter(json_keys(_j), lambda k: NOT list_contains({known}, k))) > 0, false) AS _unknown,
               {raw_cols}
        FROM (SELECT *, json_extract_string(_j, {paths}) AS _vals FROM obj)
    ), typed AS (
        SELECT *, {", ".join(typed_cols)} FROM raw
    )
    SELECT {meta}, value,{" _file," if with_file else ""} {", ".join(q(n) for n in contract.names)},
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
            return (
                f"coalesce({_days_since(d.column)}, {_days_since(d.fallback)})" if d.fallback else _days_since(d.column)
            )
        if d.kind == "is_present":
            return (
                f"({q(d.column)} IS NOT NULL)"
                if d.feature == "boolean"
                else f"CAST({q(d.column)} IS NOT NULL AS INTEGER)"
            )
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


def _path(file: str) -> str:
    """A Bronze object as a local path (the lake names them file:///...)."""
    from urllib.parse import unquote

    return unquote(file[len("file://") :]) if file.startswith("file://") else file


# Arrival order: the first arrival is the smallest. Spark breaks the last tie (same ingest time,
# offset and partition, another source) by a hash of the source name; the oracle by the name.
ARRIVAL = 'ingest_ts, "offset", "partition", source'
POSITION = ["source", "topic", "partition", "offset"]


def silver_tables(contract: Contract) -> dict[str, str]:
    """SQL for Silver computed from scratch over the `parsed` table, per scope (`before`: the objects
    Silver had seen; `after`: those plus the run's). The semantics of docs/RELIABILITY.md, written
    independently of spark_apps/transforms.py:
    - exact copies: one row per (event id, content) among valid rows and per source position among
      quarantined rows, the first arrival (ingest time, offset, partition, source) kept;
    - latest state per key: the maximum over (event time, the contract columns in contract order
      with NULL smallest, then the earliest arrival); without an event time, over (the arrival:
      ingest time, offset, partition, source; then the contract columns);
    - quarantine: every bad source position, from its earliest landing.
    """
    eid, pk = q(contract.event_id), q(contract.primary_key)
    names = ", ".join(q(n) for n in contract.names)
    content_desc = ", ".join(f"{q(n)} DESC NULLS LAST" for n in contract.names)
    # With an event time: the latest event, then the greatest content, then the earliest arrival.
    # Without: the latest arrival (ingest time, then offset, partition, source), then the content.
    latest = (
        f"{q(contract.event_time)} DESC NULLS LAST, {content_desc}, {ARRIVAL}"
        if contract.event_time
        else f'ingest_ts DESC, "offset" DESC, "partition" DESC, source DESC, {content_desc}'
    )
    meta = ", ".join(q(m) for m in BRONZE_META)
    position = ", ".join(q(k) for k in POSITION)
    out = {}
    for scope, where in (("before", "_before"), ("after", "(_before OR _run)"), ("run", "_run")):
        accepted = f"""(SELECT * FROM parsed WHERE len(_reasons) = 0 AND {where}
                        QUALIFY row_number() OVER (PARTITION BY {eid}, {names} ORDER BY {ARRIVAL}) = 1)"""
        out[f"accepted_{scope}"] = accepted
        out[f"state_{scope}"] = f"""
            SELECT {names}, source AS _source, "partition" AS _partition, "offset" AS _offset, ingest_ts AS _ingest_ts
            FROM {accepted}
            QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY {latest}) = 1"""
        out[f"quarantine_{scope}"] = f"""
            SELECT {meta}, value, _reasons[1] AS reason, _reasons AS reasons, {names}
            FROM parsed WHERE len(_reasons) > 0 AND {where}
            QUALIFY row_number() OVER (PARTITION BY {position} ORDER BY ingest_ts, _file) = 1"""
    return out


def bronze_to_silver(
    con, bronze_files: list[str], out: Path, contract: Contract | None = None, before: list[str] | None = None
) -> dict:
    """The oracle of the bronze_to_silver stage: Silver state and quarantine computed from scratch
    over every Bronze object (`before` + `bronze_files`), and the figures and gate batch of a run
    that reads `bronze_files` on top of a Silver that had seen `before` (they may overlap: a
    backfill reads objects again). Writes out/customers, out/quarantine, out/batch."""
    contract = contract or load_contract()
    run_files = sorted({_path(f) for f in bronze_files})
    before_files = sorted({_path(f) for f in before or []})
    every = sorted(set(run_files) | set(before_files))
    if not every:
        raise ValueError("no Bronze objects")
    pk, names = q(contract.primary_key), ", ".join(q(n) for n in contract.names)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE parsed AS
        SELECT * EXCLUDE (_file), _file IN (SELECT unnest({lit_list(run_files)})) AS _run,
               _file IN (SELECT unnest({lit_list(before_files)})) AS _before, _file
        FROM ({parse_sql(every, contract, with_file=True)})""")
    t = silver_tables(contract)
    _copy(con, t["state_after"], out / "customers")
    _copy(
        con,
        f"SELECT {', '.join(q(m) for m in BRONZE_META)}, value, reason, reasons FROM ({t['quarantine_after']})",
        out / "quarantine",
    )
    # The gate's batch: the run's distinct deliveries as parsed, with the arrival each keeps (its
    # ingest time and hour: "future" and per-hour shares are judged on them) and per-family reason flags.
    # `_conflict`: an accepted event whose id is its key's state before the run, with other content.
    arrival = "ingest_ts AS _ingest_ts, ingest_date AS _ingest_date, ingest_hour AS _ingest_hour"
    eid, row = q(contract.event_id), lambda t: "(" + ", ".join(f"{t}.{q(n)}" for n in contract.names) + ")"
    conflict = f"""EXISTS (SELECT 1 FROM ({t["state_before"]}) s WHERE s.{pk} = a.{pk} AND s.{eid} = a.{eid}
                           AND {row("s")} IS DISTINCT FROM {row("a")})"""
    _copy(
        con,
        f"""
        SELECT {", ".join("a." + q(n) for n in contract.names)}, {arrival}, false AS _quarantined, false AS _unparseable,
               false AS _unknown_field, false AS _bad_type, CAST(NULL AS VARCHAR) AS _reason, {conflict} AS _conflict
        FROM {t["accepted_run"]} a
        UNION ALL
        SELECT {names}, {arrival}, true, list_contains(reasons, {lit(UNPARSEABLE)}), list_contains(reasons, {lit(UNKNOWN_FIELD)}),
               len(list_filter(reasons, lambda r: starts_with(r, 'bad_type:'))) > 0, reason, false
        FROM ({t["quarantine_run"]})
        -- one row per bad event (event id and bytes; a resend under other positions is a copy);
        -- a record without an event id is its own position
        QUALIFY row_number() OVER (PARTITION BY {eid}, value, {", ".join(f"CASE WHEN {eid} IS NULL THEN {q(k)} END" for k in POSITION)}
                                   ORDER BY {ARRIVAL}) = 1""",
        out / "batch",
    )

    def one(sql):
        return con.execute(sql).fetchone()[0]

    position = ", ".join(q(k) for k in POSITION)
    bronze_in = one("SELECT count(*) FROM parsed WHERE _run")
    accepted = one(f"SELECT count(*) FROM {t['accepted_run']}")
    quarantined = one(f"""SELECT count(*) FROM ({t["quarantine_run"]}) r ANTI JOIN
                          (SELECT {position} FROM parsed WHERE len(_reasons) > 0 AND _before) b USING ({position})""")
    reasons = dict(con.execute(f"SELECT reason, count(*) FROM ({t['quarantine_run']}) GROUP BY 1").fetchall())
    figures = {
        "bronze_objects": len(run_files),
        "bronze_in": bronze_in,
        "accepted": accepted,
        "quarantined": quarantined,
        "duplicates": bronze_in - accepted - quarantined,
        "new_keys": one(
            f"SELECT count(DISTINCT {pk}) FROM {t['accepted_run']} a ANTI JOIN ({t['state_before']}) b USING ({pk})"
        ),
        "changed": one(f"SELECT count(*) FROM (({t['state_after']}) EXCEPT ({t['state_before']}))"),
        "silver_rows": one(f"SELECT count(*) FROM ({t['state_after']})"),
        "quarantine_rows": one(f"SELECT count(*) FROM ({t['quarantine_after']})"),
        "quarantine_reasons": dict(sorted(reasons.items())),
    }
    con.execute("DROP TABLE parsed")
    return figures


def lit_list(values: list[str]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]::VARCHAR[]"


def silver_to_gold(con, silver_dir: Path, out: Path, contract: Contract | None = None) -> dict:
    contract = contract or load_contract()
    silver = f"read_parquet({lit(str(silver_dir / '*.parquet'))})"
    _copy(con, gold_sql(silver, contract), out / "customer_features")
    rows = con.execute(
        f"SELECT count(*) FROM read_parquet({lit(str(out / 'customer_features' / '*.parquet'))})"
    ).fetchone()[0]
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
