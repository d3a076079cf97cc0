"""Silver -> Gold features (interim: the training owner's contract-driven version replaces this)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mdp.core.contract import Contract


def build_features(silver: DataFrame, contract: Contract) -> DataFrame:
    if contract.tombstone:
        silver = silver.where(F.col(contract.tombstone.column).isNull() | (F.col(contract.tombstone.column) != contract.tombstone.value))
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
