"""Silver -> Gold: one feature row per customer with the label, as a versioned snapshot.

Training names the snapshot id it used, so a model can always be traced to its exact data.
Run alone: mdp stage silver_to_gold (a SparkApplication runs mdp/shell/spark_main.py).
"""

from __future__ import annotations

from mdp.core.context import RunContext, StageError
from spark_apps.session import get_spark
from mdp.core.contract import load_contract
from mdp.core.lake import gold_dataset, new_version, silver_dataset, spark_uri
from spark_apps.transforms import build_features


def run(ctx: RunContext) -> dict:
    settings, contract = ctx.settings, ctx.contract
    spark = get_spark(settings)
    current = silver_dataset(settings, ctx.store).current()
    if not current:
        raise StageError("no published Silver: run bronze_to_silver and validate_silver first")
    silver_uri = silver_dataset(settings, ctx.store).table_uri("customers", current["version"])
    gold = gold_dataset(settings, ctx.store)
    snapshot = new_version()
    features = build_features(spark.read.parquet(spark_uri(silver_uri)), contract)
    target = gold.table_uri("customer_features", snapshot)
    features.coalesce(1).write.mode("overwrite").parquet(spark_uri(target))
    rows = spark.read.parquet(spark_uri(target)).count()
    gold.commit(snapshot, {"silver_version": current["version"], "rows": rows})
    gold.gc()
    return {"gold_snapshot": snapshot, "gold_rows": rows, "silver_version": current["version"]}

