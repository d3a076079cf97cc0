"""Pure DataFrame -> DataFrame transforms of Bronze -> Silver. No I/O here: the stage module reads
and writes.

Everything schema-shaped is derived from the contract: the parse schema, the casts, the
normalisers and the quarantine rules (one reason code per failed rule).

Semantics (docs/RELIABILITY.md states them for users):
- A delivery is one Bronze row. The same Kafka record landed twice has the same source position;
  the same event sent twice has the same event id and content. Both are exact copies: one is kept
  (the first arrival), the others are counted as duplicates and never count against a batch.
- The latest state per key is the maximum over a total order of all accepted events: event time,
  then content (field by field, in contract order, NULL smallest), then first arrival; without an
  event time, the latest arrival (ingest time, then position in the source), then content. A maximum
  does not depend on the order in which batches are processed, so redelivery, late data and
  out-of-order backfills give the same Silver.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from pyspark.sql.window import Window

from mdp.core.contract import UNKNOWN_FIELD, UNPARSEABLE, Column, Contract, Rule, anchored

DATA_TYPES = {
    "string": StringType,
    "int": IntegerType,
    "double": DoubleType,
    "boolean": BooleanType,
    "date": DateType,
    "timestamp": TimestampType,
}
BRONZE_META = ["source", "topic", "partition", "offset", "ingest_ts", "ingest_date", "ingest_hour"]
# A Bronze record's identity: where it came from. The same record landed twice shares it.
POSITION = ["source", "topic", "partition", "offset"]
QUARANTINE_COLUMNS = [*BRONZE_META, "value", "reason", "reasons", "_copies"]
# Silver keeps where each state came from: the last tie-breaker, and lineage.
SILVER_META = ["_source", "_partition", "_offset", "_ingest_ts"]
# Whitespace that `trim` strips, line terminators included: Java's \s (ASCII) and the Unicode ones
# a copy-paste brings. btrim takes them as a set of characters: no regex scan of every value.
_SPACE = " \t\n\x0b\f\r\u0085\u00a0\u2028\u2029\ufeff"


def spark_schema(contract: Contract) -> StructType:
    return StructType(
        [StructField(column.name, DATA_TYPES[column.type](), column.nullable) for column in contract.columns]
    )


def silver_schema(contract: Contract) -> StructType:
    """Silver state's columns: the contract's, then lineage."""
    meta = [
        StructField("_source", StringType()),
        StructField("_partition", IntegerType()),
        StructField("_offset", LongType()),
        StructField("_ingest_ts", TimestampType()),
    ]
    return StructType(spark_schema(contract).fields + meta)


def _normalise(col: SparkColumn, column: Column) -> SparkColumn:
    steps = {
        "trim": lambda x: F.btrim(x, F.lit(_SPACE)),
        "lower": F.lower,
        "upper": F.upper,
    }
    for step in column.normalise:
        col = steps[step](col)
    return col


# The values every engine and store downstream can hold (Contract.representable): a date or time
# in years 1-9999 (Python's and pandas' range; Spark parses years of up to 7 digits), text without
# U+0000 (no SQL text type takes it). Anything else does not cast: bad_type:<column>.
_FIRST_DAY, _LAST_DAY = "0001-01-01", "9999-12-31"


def _typed(col: SparkColumn, column: Column) -> SparkColumn:
    if column.type == "string":
        return F.when(~F.contains(col, F.lit("\u0000")), col)
    typed = col.try_cast(DATA_TYPES[column.type]())
    if column.type in ("date", "timestamp"):
        day = F.to_date(typed) if column.type == "timestamp" else typed
        typed = F.when(day.between(F.lit(_FIRST_DAY).cast("date"), F.lit(_LAST_DAY).cast("date")), typed)
    return typed


def _lit(value: object) -> SparkColumn:
    return F.lit(value) if not isinstance(value, date) else F.lit(value).cast("date")


def _failure(
    rule: Rule, column: Column, raw: SparkColumn, typed: SparkColumn, ingest_ts: SparkColumn, skew_hours: int
) -> SparkColumn:
    """True when the row breaks the rule. One branch per rule kind; codes come from the contract."""
    if rule.kind == "not_null":
        return raw.isNull()
    if rule.kind == "type":
        return raw.isNotNull() & typed.isNull()
    if rule.kind == "regex" and column.regex is not None:  # Contract.rules() gives a regex rule only then
        return typed.isNotNull() & ~typed.rlike(anchored(column.regex, "java"))
    if rule.kind == "in_set":
        return typed.isNotNull() & ~typed.isin(column.allowed)
    if rule.kind == "between":
        low = typed < _lit(column.min) if column.min is not None else F.lit(False)
        high = typed > _lit(column.max) if column.max is not None else F.lit(False)
        return typed.isNotNull() & (low | high)
    if rule.kind == "not_future":
        return typed.isNotNull() & (typed.cast("timestamp") > ingest_ts + F.expr(f"INTERVAL {skew_hours} HOURS"))
    raise ValueError(f"no Spark check for rule kind {rule.kind!r}")


def parse_events(bronze: DataFrame, contract: Contract) -> DataFrame:
    """Bronze rows -> one row per message: typed contract columns, Bronze metadata, `_reasons`.

    `_reasons` is empty for a row that meets the contract; otherwise it lists every rule it breaks,
    the first being the primary reason.
    """
    # One JSON parse per message, into a map of raw field texts: its keys reveal unknown fields,
    # and it is NULL when the message is not a JSON object at all.
    fields = F.from_json(F.col("value").cast("string"), MapType(StringType(), StringType()), {"mode": "PERMISSIVE"})
    known = F.array(*[F.lit(n) for n in contract.names])
    raw = bronze.select(*BRONZE_META, "value", fields.alias("_m")).select(
        *BRONZE_META,
        "value",
        # Not a JSON object, or not UTF-8 (JSON is UTF-8; decoding anyway would turn bad bytes into U+FFFD).
        (F.col("_m").isNull() | ~F.expr("is_valid_utf8(CAST(value AS STRING))")).alias("_not_object"),
        (F.size(F.array_except(F.map_keys("_m"), known)) > 0).alias("_unknown"),
        *[F.col("_m")[column.name].alias(f"_raw_{column.name}") for column in contract.columns],
    )
    typed = raw.select(
        "*",
        *[
            _typed(_normalise(F.col(f"_raw_{column.name}"), column), column).alias(column.name)
            for column in contract.columns
        ],
    )
    checks = [(UNPARSEABLE, F.col("_not_object"))]
    if contract.unknown_fields == "quarantine":
        checks.append((UNKNOWN_FIELD, F.col("_unknown")))
    t = contract.tombstone
    deleting = F.coalesce(F.col(t.column) == F.lit(t.value), F.lit(False)) if t else F.lit(False)
    for rule in contract.rules():
        column = contract.column(rule.column)
        cond = _failure(
            rule,
            column,
            F.col(f"_raw_{column.name}"),
            F.col(column.name),
            F.col("ingest_ts"),
            contract.max_future_skew_hours,
        )
        if rule.kind == "not_null" and column.name in contract.tombstone_may_omit:
            cond = cond & ~deleting
        checks.append((rule.code, cond))
    reasons = F.filter(F.array(*[F.when(cond, F.lit(code)) for code, cond in checks]), lambda x: x.isNotNull())
    # A message that is not a JSON object can only fail one way; its other checks are noise.
    reasons = F.when(F.col("_not_object"), F.array(F.lit(UNPARSEABLE))).otherwise(reasons)
    return typed.select(*BRONZE_META, "value", *contract.names, reasons.alias("_reasons"))


def content_hash(contract: Contract) -> SparkColumn:
    """A hash of an event's contract columns; NULL and a value hash differently in every position."""
    cols = [F.col(n) for n in contract.names]
    return F.xxhash64(*cols, *[col.isNull() for col in cols])


def _arrival(ts: str, source: str, partition: str, offset: str, earliest_largest: bool = False) -> SparkColumn:
    """Arrival order: ingest time, then offset, partition and source (a deterministic total order).
    Smallest is first; with earliest_largest, the first arrival is the largest (for max_by)."""
    sign = -1 if earliest_largest else 1
    return F.struct(
        (F.unix_micros(F.col(ts)) * sign).alias("ts"),
        (F.col(offset) * sign).alias("offset"),
        (F.col(partition) * sign).alias("partition"),
        (F.xxhash64(F.col(source)) * sign).alias("source"),
    )


def reason_flags(reasons: SparkColumn) -> list[SparkColumn]:
    """Per-family flags of a `_reasons` array, for the gate's shares (contract.quality)."""
    return [
        (F.size(reasons) > 0).alias("_quarantined"),
        F.array_contains(reasons, UNPARSEABLE).alias("_unparseable"),
        F.array_contains(reasons, UNKNOWN_FIELD).alias("_unknown_field"),
        F.exists(reasons, lambda r: r.startswith("bad_type:")).alias("_bad_type"),
        F.when(F.size(reasons) > 0, reasons[0]).alias("_reason"),
    ]


def batch_arrival() -> list[SparkColumn]:
    """The arrival a batch row keeps (the first for an accepted event, the earliest landing for a
    quarantined record): the gate judges "future" against its ingest time, and shares per ingest hour."""
    return [
        F.col("ingest_ts").alias("_ingest_ts"),
        F.col("ingest_date").alias("_ingest_date"),
        F.col("ingest_hour").alias("_ingest_hour"),
    ]


def conflicts_with_state(accepted: DataFrame, state: DataFrame | None, contract: Contract) -> DataFrame:
    """`accepted` with `_conflict`: the event id is that of its key's published state, with other
    content. A conflicting copy arriving in a later run is then bounded by
    quality.max_conflicting_duplicates like one within a batch."""
    if state is None:
        return accepted.withColumn("_conflict", F.lit(False))
    key, event_id = contract.primary_key, contract.event_id
    old = state.select(key, F.col(event_id).alias("_state_id"), content_hash(contract).alias("_state_hash"))
    same_id_other_content = (F.col("_state_id") == F.col(event_id)) & (F.col("_state_hash") != F.col("_hash"))
    return (
        accepted.join(old, key, "left")
        .withColumn("_conflict", F.coalesce(same_id_other_content, F.lit(False)))
        .drop("_state_id", "_state_hash")
    )


def unseen_events(accepted: DataFrame, seen: DataFrame | None, contract: Contract) -> tuple[DataFrame, DataFrame]:
    """(fresh, seen after): accepted events less those in `seen` (every distinct event an earlier
    version merged, as contract columns), and `seen` with the fresh ones added. The hash is
    recomputed on `seen`, so a column added to the contract reads NULL on both sides."""
    if seen is None:
        return accepted, accepted.select(*contract.names)
    known = seen.select(contract.event_id, content_hash(contract).alias("_hash"))
    fresh = accepted.join(known, [contract.event_id, "_hash"], "left_anti")
    return fresh, seen.unionByName(fresh.select(*contract.names))


def gate_batch(accepted: DataFrame, quarantined: DataFrame, state: DataFrame | None, contract: Contract) -> DataFrame:
    """What the gate checks: the run's distinct deliveries as parsed (a bad event once, by id and
    bytes), with per-family reason flags, the arrival each keeps and `_conflict`."""
    flags_ok = [
        F.lit(False).alias("_quarantined"),
        F.lit(False).alias("_unparseable"),
        F.lit(False).alias("_unknown_field"),
        F.lit(False).alias("_bad_type"),
        F.lit(None).cast("string").alias("_reason"),
    ]
    good = conflicts_with_state(accepted, state, contract).select(
        *contract.names, *batch_arrival(), *flags_ok, "_conflict"
    )
    bad = distinct_bad_messages(quarantined, contract).select(
        *contract.names, *batch_arrival(), *reason_flags(F.col("reasons")), F.lit(False).alias("_conflict")
    )
    return good.unionByName(bad)


def distinct_deliveries(parsed: DataFrame, contract: Contract) -> tuple[DataFrame, DataFrame]:
    """(accepted, quarantined): each without exact copies.

    accepted: one row per (event id, content), from its first arrival, with `_hash` and `_copies`.
    quarantined: one row per source position, with `reason`, `reasons` and the raw bytes.
    """
    valid = parsed.where(F.size("_reasons") == 0).withColumn("_hash", content_hash(contract))
    first = F.min_by(F.struct(*BRONZE_META, *contract.names), _arrival("ingest_ts", "source", "partition", "offset"))
    accepted = (
        valid.groupBy(contract.event_id, "_hash")
        .agg(first.alias("_r"), F.count(F.lit(1)).alias("_copies"))
        .select("_r.*", "_hash", "_copies")
    )
    bad = parsed.where(F.size("_reasons") > 0)
    quarantined = (
        bad.groupBy(*POSITION)
        .agg(
            # the earliest landing
            F.min_by(F.struct(*[n for n in bad.columns if n not in POSITION]), F.col("ingest_ts")).alias("_r"),
            F.count(F.lit(1)).alias("_copies"),
        )
        .select(*POSITION, "_r.*", "_copies")
        # The raw bytes exactly as they arrived (not always valid UTF-8), so a record can be replayed.
        .select(
            *BRONZE_META,
            "value",
            *contract.names,
            F.col("_reasons")[0].alias("reason"),
            F.col("_reasons").alias("reasons"),
            "_copies",
        )
    )
    return accepted, quarantined


def distinct_bad_messages(quarantined: DataFrame, contract: Contract) -> DataFrame:
    """Quarantined records for the gate's batch: one per bad event (event id and raw bytes), at its
    earliest arrival. The quarantine keeps every source position, but the same event under another
    position (a file ingested under two names, a producer's resend) is a copy, as a copy of a good
    event is: a resend must not double a batch's bad share, nor leave an hour holding only its bad
    records. A record without an event id (not JSON, or missing it) is its own position: the
    same junk sent again and again is a broken producer, and counts each time."""
    anonymous = F.col(contract.event_id).isNull()
    order: list[str | SparkColumn] = ["ingest_ts", "offset", "partition", F.xxhash64("source")]
    w = Window.partitionBy(contract.event_id, "value", *[F.when(anonymous, F.col(k)) for k in POSITION]).orderBy(*order)
    return quarantined.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1).drop("_n")


def to_silver_rows(accepted: DataFrame, contract: Contract) -> DataFrame:
    """Accepted events in Silver's column layout (contract columns + lineage)."""
    return accepted.select(
        *contract.names,
        F.col("source").alias("_source"),
        F.col("partition").alias("_partition"),
        F.col("offset").alias("_offset"),
        F.col("ingest_ts").alias("_ingest_ts"),
    )


def latest_state(events: DataFrame, existing: DataFrame | None, contract: Contract) -> DataFrame:
    """Merge accepted events (Silver layout) into the existing state: one row per key, the maximum by
    (event time, content, first arrival), or without an event time by (latest arrival, content).
    Adds `_changed`: the row came from `events`."""
    cols = [*contract.names, *SILVER_META]
    new = events.select(*cols, F.lit(True).alias("_changed"))
    rows = new if existing is None else existing.select(*cols, F.lit(False).alias("_changed")).unionByName(new)
    # max_by over a struct is a lexicographic maximum (NULL smallest). Content is compared field by
    # field in contract order: any engine can reproduce it (the DuckDB oracle in tests does).
    content = F.struct(*contract.names).alias("c")
    kept = (~F.col("_changed")).alias("kept")  # last: the same delivery again keeps the existing row
    if contract.event_time:
        # An exact copy of the key's current state ties on time and content; the earlier arrival keeps it.
        order = F.struct(
            F.col(contract.event_time).alias("t"),
            content,
            _arrival("_ingest_ts", "_source", "_partition", "_offset", earliest_largest=True).alias("a"),
            kept,
        )
    else:
        # Without an event time the state is the latest arrival: ingest time, then the position in
        # its source (a file's row order, a Kafka partition's order, which holds every row of a key),
        # whether or not the rows share a (Kafka: millisecond) timestamp.
        order = F.struct(
            F.struct(F.col("_ingest_ts"), F.col("_offset"), F.col("_partition"), F.col("_source")).alias("a"),
            content,
            kept,
        )
    return (
        rows.groupBy(contract.primary_key).agg(F.max_by(F.struct(*cols, "_changed"), order).alias("_r")).select("_r.*")
    )


def merge_quarantine(new: DataFrame, existing: DataFrame | None) -> DataFrame:
    """Quarantine accumulates. A record is identified by its source position, so a record landed
    again (or a backfill) never doubles it: its earlier row is kept."""
    new = new.drop("_copies")
    if existing is None:
        return new
    return existing.unionByName(new.join(existing.select(*POSITION), POSITION, "left_anti"), allowMissingColumns=True)


def content_checksum(df: DataFrame) -> tuple[int, str]:
    """(rows, order-independent checksum of every column): equal tables give equal pairs.
    NULLs hash apart from values in every position ((1, NULL) and (NULL, 1) differ)."""
    cols = [F.col(n) for n in sorted(df.columns)]
    h = F.xxhash64(*cols, *[col.isNull() for col in cols])
    row = df.agg(F.count(F.lit(1)).alias("n"), F.sum(h.cast("decimal(38,0)")).alias("h")).first()
    assert row is not None  # a global aggregate has one row, even over no rows
    return int(row["n"]), str(row["h"] or 0)
