"""Pure DataFrame -> DataFrame transforms. No I/O here: readers and writers live in the stage modules.

Everything schema-shaped is derived from the contract: the parse schema, the casts, the
normalisers and the quarantine rules (one reason code per failed rule).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from mdp.core.contract import UNKNOWN_FIELD, UNPARSEABLE, Column, Contract, Rule

DATA_TYPES = {"string": StringType, "int": IntegerType, "double": DoubleType, "boolean": BooleanType, "date": DateType, "timestamp": TimestampType}
BRONZE_META = ["source", "topic", "partition", "offset", "ingest_ts", "ingest_date", "ingest_hour"]
# Silver keeps where each state came from: the tie-breaker for equal event times, and lineage.
SILVER_META = ["_source", "_partition", "_offset", "_ingest_ts"]


def spark_schema(contract: Contract) -> StructType:
    return StructType([StructField(c.name, DATA_TYPES[c.type](), c.nullable) for c in contract.columns])


def _normalise(col: SparkColumn, c: Column) -> SparkColumn:
    for step in c.normalise:
        col = {"trim": F.trim, "lower": F.lower, "upper": F.upper}[step](col)
    return col


def _lit(value):
    return F.lit(value) if not isinstance(value, date) else F.lit(value).cast("date")


def _failure(rule: Rule, c: Column, raw: SparkColumn, typed: SparkColumn, ingest_ts: SparkColumn, skew_hours: int) -> SparkColumn:
    """True when the row breaks the rule. One branch per rule kind; codes come from the contract."""
    if rule.kind == "not_null":
        return raw.isNull()
    if rule.kind == "type":
        return raw.isNotNull() & typed.isNull()
    if rule.kind == "regex":
        return typed.isNotNull() & ~typed.rlike(c.regex)
    if rule.kind == "in_set":
        return typed.isNotNull() & ~typed.isin(c.allowed)
    if rule.kind == "between":
        low = typed < _lit(c.min) if c.min is not None else F.lit(False)
        high = typed > _lit(c.max) if c.max is not None else F.lit(False)
        return typed.isNotNull() & (low | high)
    if rule.kind == "not_future":
        return typed.isNotNull() & (typed.cast("timestamp") > ingest_ts + F.expr(f"INTERVAL {skew_hours} HOURS"))
    raise ValueError(f"no Spark check for rule kind {rule.kind!r}")


def parse_events(bronze: DataFrame, contract: Contract) -> DataFrame:
    """Bronze rows -> one row per message: typed contract columns, Bronze metadata, `_reasons`.

    `_reasons` is empty for a row that meets the contract; otherwise it lists every rule it breaks.
    """
    # One JSON parse per message, into a map of raw field texts: its keys reveal unknown fields,
    # and it is NULL when the message is not a JSON object at all. Later steps refer to named
    # columns, so each field is looked up and cast once however many rules test it.
    fields = F.from_json(F.col("value").cast("string"), MapType(StringType(), StringType()), {"mode": "PERMISSIVE"})
    known = F.array(*[F.lit(n) for n in contract.names])
    raw = bronze.select(*BRONZE_META, "value", fields.alias("_m")).select(
        *BRONZE_META,
        "value",
        # Not a JSON object, or not UTF-8 (JSON is UTF-8; decoding anyway would turn bad bytes into U+FFFD).
        (F.col("_m").isNull() | ~F.expr("is_valid_utf8(CAST(value AS STRING))")).alias("_not_object"),
        (F.size(F.array_except(F.map_keys("_m"), known)) > 0).alias("_unknown"),
        *[F.col("_m")[c.name].alias(f"_raw_{c.name}") for c in contract.columns],
    )
    typed = raw.select(
        "*",
        *[
            (_normalise(F.col(f"_raw_{c.name}"), c) if c.type == "string" else _normalise(F.col(f"_raw_{c.name}"), c).try_cast(DATA_TYPES[c.type]())).alias(c.name)
            for c in contract.columns
        ],
    )
    checks = [(UNPARSEABLE, F.col("_not_object"))]
    if contract.unknown_fields == "quarantine":
        checks.append((UNKNOWN_FIELD, F.col("_unknown")))
    for rule in contract.rules():
        c = contract.column(rule.column)
        cond = _failure(rule, c, F.col(f"_raw_{c.name}"), F.col(c.name), F.col("ingest_ts"), contract.max_future_skew_hours)
        checks.append((rule.code, cond))
    reasons = F.filter(F.array(*[F.when(cond, F.lit(code)) for code, cond in checks]), lambda x: x.isNotNull())
    # A message that is not a JSON object can only fail one way; its other checks are noise.
    reasons = F.when(F.col("_not_object"), F.array(F.lit(UNPARSEABLE))).otherwise(reasons)
    return typed.select(*BRONZE_META, "value", *contract.names, reasons.alias("_reasons"))


def split_quarantine(parsed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid events, quarantined rows with a primary `reason` and all `reasons`)."""
    valid = parsed.where(F.size("_reasons") == 0).drop("_reasons", "value")
    quarantined = parsed.where(F.size("_reasons") > 0).select(
        # The raw bytes exactly as they arrived (not always valid UTF-8), so a record can be replayed.
        *BRONZE_META, "value", F.col("_reasons")[0].alias("reason"), F.col("_reasons").alias("reasons")
    )
    return valid, quarantined


def mark_duplicates(valid: DataFrame, contract: Contract) -> DataFrame:
    """Adds `_dup`: true for every copy of an event id but the first delivered (by source position)."""
    w = Window.partitionBy(contract.event_id).orderBy("ingest_ts", "partition", "offset")
    return valid.withColumn("_dup", F.row_number().over(w) > 1)


def to_silver_rows(events: DataFrame, contract: Contract) -> DataFrame:
    """Valid, unique events in Silver's column layout (contract columns + source metadata)."""
    return events.select(
        *contract.names,
        F.col("source").alias("_source"),
        F.col("partition").alias("_partition"),
        F.col("offset").alias("_offset"),
        F.col("ingest_ts").alias("_ingest_ts"),
    )


def latest_state(events: DataFrame, existing: DataFrame | None, contract: Contract) -> DataFrame:
    """Merge new events into existing Silver: one row per customer, the latest event wins.

    Ordering is total (event time, then source offset, then event id), so the result does not
    depend on input order: a rerun or an out-of-order backfill gives the same table.
    """
    rows = events if existing is None else existing.unionByName(events)
    # An event id delivered again in a later batch: keep the first delivery (as mark_duplicates does
    # within a batch), whatever order the batches run in. dropDuplicates kept an arbitrary copy.
    first = Window.partitionBy(contract.event_id).orderBy("_ingest_ts", "_source", "_partition", "_offset")
    rows = rows.withColumn("_first", F.row_number().over(first)).where("_first = 1").drop("_first")
    w = Window.partitionBy(contract.primary_key).orderBy(
        F.col(contract.event_time).desc(), F.col("_offset").desc(), F.col(contract.event_id).desc()
    )
    return rows.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def merge_quarantine(new: DataFrame, existing: DataFrame | None) -> DataFrame:
    """Quarantine accumulates; a record is identified by its source position, so reruns don't double it."""
    rows = new if existing is None else existing.unionByName(new)
    return rows.dropDuplicates(["source", "topic", "partition", "offset", "ingest_date", "ingest_hour"])


def build_features(silver: DataFrame, contract: Contract) -> DataFrame:
    """One feature row per customer, with the label. Time features are relative to the snapshot's
    as-of time (the latest event in Silver), so the same Silver always gives the same Gold."""
    as_of = silver.agg(F.max(contract.event_time).alias("as_of"))
    df = silver.crossJoin(F.broadcast(as_of))
    as_of_date = F.to_date("as_of")
    return df.select(
        F.col(contract.primary_key),
        F.col("age"),
        F.col("plan"),
        F.col("country"),
        F.col("monthly_spend"),
        F.col("support_tickets"),
        F.datediff(as_of_date, F.col("signup_date")).alias("tenure_days"),
        F.coalesce(F.datediff(as_of_date, F.col("last_login_date")), F.datediff(as_of_date, F.col("signup_date"))).alias(
            "days_since_last_login"
        ),
        F.col("phone").isNotNull().alias("has_phone"),
        F.col(contract.label.column).cast("int").alias(contract.label.column),
        F.col("as_of"),
    )


def content_checksum(df: DataFrame) -> tuple[int, str]:
    """(rows, order-independent checksum of every column): equal tables give equal pairs."""
    cols = sorted(df.columns)
    row = df.agg(F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h")).first()
    return int(row["n"]), str(row["h"] or 0)
