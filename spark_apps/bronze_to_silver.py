"""Bronze -> Silver: parse, cast, quarantine, dedupe, merge into the latest state per customer.

Reads only the Bronze partitions of the run's interval and merges them into the committed Silver.
The result is staged (not yet visible); the GX gate publishes it.
Run alone: mdp stage bronze_to_silver (a SparkApplication runs mdp/shell/spark_main.py).
"""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from mdp.core.context import RunContext, StageError
from spark_apps.session import get_spark
from mdp.core.contract import UNPARSEABLE, load_contract
from mdp.core.lake import BRONZE_SCHEMA, bronze_partitions_in, bronze_table_uri, new_version, silver_dataset, spark_uri
from spark_apps.transforms import (
    latest_state,
    mark_duplicates,
    merge_quarantine,
    parse_events,
    split_quarantine,
    to_silver_rows,
)

_ARROW_TO_SPARK = {"binary": BinaryType, "string": StringType, "int32": IntegerType, "int64": LongType, "timestamp[us, tz=UTC]": TimestampType}


def bronze_spark_schema() -> StructType:
    fields = [StructField(f.name, _ARROW_TO_SPARK[str(f.type)]()) for f in BRONZE_SCHEMA]
    # Partition columns stay strings: no type inference, the same in Spark, DuckDB and pandas.
    return StructType(fields + [StructField("ingest_date", StringType()), StructField("ingest_hour", StringType())])


def run(ctx: RunContext) -> dict:
    settings, contract = ctx.settings, ctx.contract
    spark = get_spark(settings)
    silver = silver_dataset(settings, ctx.store)
    current = silver.current()
    parts = bronze_partitions_in(settings, ctx.interval, ctx.store)
    if not parts:
        if current is None:
            raise StageError(f"no Bronze data for {ctx.interval} and no Silver yet: run land_bronze first")
        silver.discard_staged()  # nothing new: the gate will keep the published version
        return {"bronze_partitions": 0, "bronze_in": 0, "quarantined": 0, "duplicates": 0, "accepted": 0}

    bronze = (
        spark.read.schema(bronze_spark_schema())
        .option("basePath", spark_uri(bronze_table_uri(settings)))
        .parquet(*[spark_uri(p) for p in parts])
    )
    parsed = parse_events(bronze, contract)
    # Only quarantined rows keep their raw bytes, so the cached frame is a fraction of Bronze's size.
    parsed = parsed.withColumn("value", F.when(F.size("_reasons") > 0, F.col("value"))).persist()
    valid, quarantined = split_quarantine(parsed)
    marked = mark_duplicates(valid, contract).persist()

    # Counted independently, so the conservation check in the run report can really fail: one pass
    # over the parsed rows gives bronze_in and the quarantine reasons; the accepted rows are counted
    # again after the dedupe below.
    primary = F.when(F.size("_reasons") > 0, F.col("_reasons")[0])
    per_reason = {r["reason"]: r["n"] for r in parsed.groupBy(primary.alias("reason")).agg(F.count(F.lit(1)).alias("n")).collect()}
    bronze_in = sum(per_reason.values())
    reasons = {k: v for k, v in per_reason.items() if k is not None}
    m = marked.agg(F.sum(F.col("_dup").cast("int")).alias("dups"), F.sum((~F.col("_dup")).cast("int")).alias("ok")).first()
    duplicates, accepted = int(m["dups"] or 0), int(m["ok"] or 0)

    version = new_version()
    existing = spark.read.parquet(spark_uri(silver.table_uri("customers", current["version"]))) if current else None
    state = latest_state(to_silver_rows(marked.where(~F.col("_dup")), contract), existing, contract)
    state.write.mode("overwrite").parquet(spark_uri(silver.table_uri("customers", version)))

    old_q = spark.read.parquet(spark_uri(silver.table_uri("quarantine", current["version"]))) if current else None
    merge_quarantine(quarantined, old_q).write.mode("overwrite").parquet(spark_uri(silver.table_uri("quarantine", version)))

    # What GX checks rule by rule: this run's events as parsed, before quarantine took any out.
    batch = parsed.where(~F.array_contains("_reasons", UNPARSEABLE)).select(*contract.names)
    batch.write.mode("overwrite").parquet(spark_uri(silver.table_uri("batch", version)))

    silver_rows = spark.read.parquet(spark_uri(silver.table_uri("customers", version))).count()
    parsed.unpersist()
    marked.unpersist()

    figures = {
        "bronze_partitions": len(parts),
        "bronze_in": bronze_in,
        "quarantined": sum(reasons.values()),
        "duplicates": duplicates,
        "accepted": accepted,
        "silver_rows": silver_rows,
        "quarantine_reasons": dict(sorted(reasons.items())),
    }
    silver.stage(version, {"interval": str(ctx.interval), "bronze": parts, **figures, "based_on": current and current["version"]})
    silver.gc()
    return {"silver_version": version, **figures}

