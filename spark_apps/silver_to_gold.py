"""Silver -> Gold: one feature row per entity with the label, as a new version of the Gold features
Delta table (a Gold snapshot).

Training names the snapshot (the table's Delta version) it used, so a model can always be traced
to its exact data, by any Delta reader.
Run alone: mdp stage silver_to_gold (a SparkApplication runs mdp/shell/spark_main.py).
"""

from __future__ import annotations

from mdp.core.context import RunContext
from mdp.core.errors import StageError
from mdp.core.lake import parquet_rows, spark_uri
from mdp.core.tables import gold_dataset, silver_dataset, spark_paths
from spark_apps.features import build_features
from spark_apps.session import get_spark
from spark_apps.transforms import silver_schema


def run(ctx: RunContext) -> dict:
    """Read the published Silver state, build its features, and commit them as a new Gold snapshot;
    nothing when the current snapshot was built from the same Silver under the same contract."""
    settings, contract = ctx.settings, ctx.contract
    silver_ds = silver_dataset(settings, ctx.store)
    silver = silver_ds.current()
    if not silver:
        raise StageError("no published Silver: run bronze_to_silver and validate_silver first")
    gold = gold_dataset(settings, ctx.store)
    with gold.lease(ctx.run_id):
        current = gold.current()
        if current and (current.silver_version, current.contract) == (
            silver.version,
            contract.fingerprint,
        ):
            # The same Silver and contract give the same Gold: nothing to do (a rerun, or nothing new).
            return {
                "gold_snapshot": current.version,
                "gold_rows": current["rows"],
                "silver_version": silver.version,
                "new_snapshot": False,
                "nothing_new": True,
            }
        # extract: the Silver state, with the contract's schema (a column added to it reads as NULL)
        spark = get_spark(settings)
        state = spark.read.schema(silver_schema(contract)).parquet(
            *spark_paths(silver_ds.files("state", silver.version))
        )
        # transform and load: one file, staged outside the table's log until the commit
        write = gold.begin(ctx.run_id)
        target = write.staging("features")
        build_features(state, contract).coalesce(1).write.mode("overwrite").parquet(spark_uri(target))
        rows = parquet_rows(settings, [target])
        snapshot = write.commit({"silver_version": silver.version, "contract": contract.fingerprint, "rows": rows})
        gold.vacuum()
    return {"gold_snapshot": snapshot, "gold_rows": rows, "silver_version": silver.version, "new_snapshot": True}
