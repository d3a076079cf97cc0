"""Gold from the contract: one feature row per live entity, with the label, as of the snapshot.

Every Gold column follows from the contract, in this order:
- the identifier (`primary_key`);
- every feature, in `Contract.features()` order: columns by role (numeric and categorical as Silver
  types them, boolean as a boolean), then the derived features;
- the label as 0/1: 1 where the label column equals `label.positive`, NULL where it is NULL;
- `as_of`: the snapshot's time, max(event time) over Silver (max(_ingest_ts) without an event time).

Derived features are relative to `as_of`, so the same Silver always gives the same Gold:
- days_since: whole days from the column's date (or the fallback's, when the column is NULL) to as_of;
- is_present: the column is not NULL (a boolean, or 0/1 when its role is numeric).

Entities whose tombstone column equals the tombstone value are deleted: they stay in Silver (so a
late update cannot resurrect them) and leave Gold. They still count for as_of.

The DuckDB and pandas references in bench/ implement the same list; tests/spark_apps/test_features.py
checks all three on hand-built Silver frames.
"""

from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mdp.core.contract import Contract, Derived

AS_OF = "as_of"
INGEST_TS = "_ingest_ts"  # Silver's lineage column: the as-of source when there is no event time


def as_of_source(contract: Contract) -> str:
    return contract.event_time or INGEST_TS


def live(silver: DataFrame, contract: Contract) -> DataFrame:
    """Silver without its tombstoned (deleted) entities."""
    if not contract.tombstone:
        return silver
    t = contract.tombstone
    return silver.where(~F.col(t.column).eqNullSafe(F.lit(t.value)))


def label_01(contract: Contract) -> SparkColumn:
    """1 where the label column holds the positive value, 0 where it holds another, NULL where NULL."""
    return (F.col(contract.label.column) == F.lit(contract.label.positive)).cast("int")


def _days_since(column: str, as_of_date: SparkColumn) -> SparkColumn:
    return F.datediff(as_of_date, F.to_date(F.col(column)))


def derived_column(d: Derived, as_of_date: SparkColumn) -> SparkColumn:
    if d.kind == "days_since":
        days = _days_since(d.column, as_of_date)
        return F.coalesce(days, _days_since(d.fallback, as_of_date)) if d.fallback else days
    if d.kind == "is_present":
        present = F.col(d.column).isNotNull()
        return present if d.feature == "boolean" else present.cast("int")
    raise ValueError(f"derived.{d.name}: no Spark expression for kind {d.kind!r}")


def feature_column(name: str, role: str, contract: Contract, as_of_date: SparkColumn) -> SparkColumn:
    derived = {d.name: d for d in contract.derived}
    if name in derived:
        return derived_column(derived[name], as_of_date)
    if role == "boolean" and contract.column(name).type != "boolean":
        return F.col(name) != 0  # a 0/1 integer flag
    return F.col(name)


def build_features(silver: DataFrame, contract: Contract) -> DataFrame:
    """Silver state -> Gold features (see the module docstring)."""
    as_of = silver.agg(F.max(as_of_source(contract)).alias(AS_OF))
    df = live(silver, contract).crossJoin(F.broadcast(as_of))
    as_of_date = F.to_date(AS_OF)
    return df.select(
        F.col(contract.primary_key),
        *[feature_column(n, role, contract, as_of_date).alias(n) for n, role, _ in contract.features()],
        label_01(contract).alias(contract.label.column),
        F.col(AS_OF),
    )
