"""Bronze -> Silver, incremental by Bronze object: parse, cast, quarantine, drop exact copies, merge
the latest state per key, and stage the result for the quality gate.

Which Bronze objects are new is Spark's own bookkeeping: a Structured Streaming file source run
with `Trigger.AvailableNow` over the whole Bronze table, whose checkpoint lives in the lake beside
each Silver write (`_checkpoint/<write>`, named by the version's manifest). A run copies the published version's checkpoint,
so it reads every object that version had not seen, whichever hour it sits in (late records, a
paused DAG, a failed landing), exactly once. A version the gate rejects is never published, and
neither is its checkpoint: the next run reads the same objects again. A rerun with nothing new
stages nothing. A backfill (`--since/--until`) also reprocesses the chosen hours' objects into the
published state; the merge is idempotent. Under a contract that shapes Silver otherwise than the
published version's, a backfill rebuilds Silver from all of Bronze instead, and so does `--all`:
that gives exactly what a from-scratch run under the current contract gives.

Row conservation is checked from independent sources before anything is staged: Bronze rows from
the Parquet footers the landing wrote, accepted and duplicate rows as Spark counted them, and
quarantine and state rows from the footers of what this run wrote.

Run alone: mdp stage bronze_to_silver (a SparkApplication runs mdp/shell/spark_main.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from mdp.core.context import RunContext
from mdp.core.contract import incompatibilities, schema_of
from mdp.core.errors import ConfigError, ConservationError, StageError
from mdp.core.lake import BRONZE_SCHEMA, bronze_files_in, bronze_table_uri, parquet_rows, spark_uri
from mdp.core.manifests import VersionManifest
from mdp.core.storage import Store, join
from mdp.core.tables import SilverDataset, Write, silver_dataset, spark_paths
from spark_apps.session import get_spark
from spark_apps.transforms import (
    POSITION,
    QUARANTINE_COLUMNS,
    distinct_deliveries,
    gate_batch,
    latest_state,
    merge_quarantine,
    parse_events,
    silver_schema,
    spark_schema,
    to_silver_rows,
    unseen_events,
)

log = logging.getLogger(__name__)
_ARROW_TO_SPARK = {
    "binary": BinaryType,
    "string": StringType,
    "int32": IntegerType,
    "int64": LongType,
    "timestamp[us, tz=UTC]": TimestampType,
}


def bronze_spark_schema() -> StructType:
    fields = [StructField(f.name, _ARROW_TO_SPARK[str(f.type)]()) for f in BRONZE_SCHEMA]
    # Partition columns stay strings: no type inference, the same in Spark, DuckDB and pandas.
    return StructType(fields + [StructField("ingest_date", StringType()), StructField("ingest_hour", StringType())])


def _lake_uri(spark_path: str) -> str:
    """A file Spark read, as the store names it (s3a:// -> s3://, file:/x -> file:///x)."""
    from urllib.parse import unquote, urlparse

    for scheme in ("s3a://", "s3://"):
        if spark_path.startswith(scheme):
            return "s3://" + unquote(spark_path[len(scheme) :])
    parsed = urlparse(spark_path)
    return f"file://{unquote(parsed.path)}" if parsed.scheme == "file" else spark_path


@dataclass
class MergeInputs:
    """What one Silver version is built from: this run's deliveries, without exact copies, and the
    tables of the version merged into (None: none, or a rebuild from Bronze alone)."""

    accepted: DataFrame
    quarantined: DataFrame
    state: DataFrame | None
    quarantine: DataFrame | None


@dataclass
class Written:
    """The staged tables of a Silver version whose rows row conservation counts."""

    state: str
    changes: str
    quarantine: str


class SilverVersionBuilder:
    """Builds one Silver version (state, changes, quarantine, the gate's batch and, without an event
    time, `seen`) from a micro-batch of Bronze (plus any backfill objects), merged into `current`
    (None: a rebuild from Bronze alone), and checks row conservation before anything is staged."""

    def __init__(self, ctx: RunContext, silver: SilverDataset, current: VersionManifest | None, write: Write):
        self.ctx, self.silver, self.current, self.write = ctx, silver, current, write
        self.settings, self.contract = ctx.settings, ctx.contract
        self.spark = get_spark(ctx.settings)
        self.figures: dict | None = None

    def _read(self, table: str, schema: StructType | None = None) -> DataFrame | None:
        if not self.current:
            return None
        version = self.silver.version_of(table, self.current.version)
        if version is None:
            return None
        reader = self.spark.read if schema is None else self.spark.read.schema(schema)
        # A file the log lists but the store lost is read as no rows: row conservation then names the loss.
        files = self.silver.table(table).file_uris(version)
        present = {join(d, f) for d in {u.rsplit("/", 1)[0] for u in files} for f in self.ctx.store.list_files(d)}
        kept = [u for u in files if u in present]
        if not kept and schema is not None:
            return self.spark.createDataFrame([], schema)
        return reader.parquet(*spark_paths(kept or files))

    def _write(self, df: DataFrame, table: str) -> str:
        uri = self.write.staging(table)  # outside the log until the gate publishes the write
        df.write.mode("overwrite").parquet(spark_uri(uri))
        return uri

    def build(self, bronze: DataFrame, files: list[str]) -> dict:
        """Bronze rows of `files` -> a staged Silver version's tables; returns its figures."""
        contract = self.contract
        # transform: parse, and split into accepted and quarantined deliveries without exact copies
        parsed = parse_events(bronze, contract)
        # Only quarantined rows keep their raw bytes, so the cached frame is a fraction of Bronze's size.
        parsed = parsed.withColumn("value", F.when(F.size("_reasons") > 0, F.col("value"))).persist()
        accepted, quarantined = distinct_deliveries(parsed, contract)
        accepted, quarantined = accepted.persist(), quarantined.persist()
        # extract: the version merged into. Its state is read with the contract's schema: a column
        # added to the contract reads as NULL.
        inputs = MergeInputs(
            accepted, quarantined, self._read("state", silver_schema(contract)), self._read("quarantine")
        )
        # transform and load: the events no earlier version merged (`seen`); the merged state and its
        # changed rows; the quarantine, which keeps where a record came from, its raw bytes and its
        # reasons (typed values of a bad record mean little, and may be out of any engine's range);
        # the gate's batch.
        fresh = self._unseen(accepted)
        merged = latest_state(to_silver_rows(fresh, contract), inputs.state, contract).persist()
        written = Written(
            state=self._write(merged.drop("_changed"), "state"),
            changes=self._write(merged.where("_changed").drop("_changed"), "changes"),
            quarantine=self._write(
                merge_quarantine(quarantined.select(*QUARANTINE_COLUMNS), inputs.quarantine), "quarantine"
            ),
        )
        self._write(gate_batch(accepted, quarantined, inputs.state, contract), "batch")
        # check: row conservation, from independent counts
        figures = self._count(inputs, files, written)
        figures["profile"] = self._profile(merged)  # cached: what was just written, without reading it back
        for df in (parsed, accepted, quarantined, merged):
            df.unpersist()
        self.figures = figures
        return figures

    def _unseen(self, accepted: DataFrame) -> DataFrame:
        """Accepted events less those an earlier version already merged; writes `seen`. Only without
        an event time: the state is then the latest arrival (each event at its first), and a copy
        landed in a later run (a file ingested again) would arrive anew and win. With an event time a
        copy ties with its original and the earlier arrival keeps the state, so no history is needed."""
        contract = self.contract
        if contract.event_time is not None:
            return accepted
        fresh, seen = unseen_events(accepted, self._read("seen", spark_schema(contract)), contract)
        self._write(seen, "seen")
        return fresh

    def _count(self, inputs: MergeInputs, files: list[str], written: Written) -> dict:
        """The figures of the version, once its rows are conserved: Bronze rows (from the footers of
        what the landing wrote) are accepted, quarantined or duplicates; state and quarantine rows
        (from the footers of what this run wrote) grow by the new keys and the new bad records."""
        key, settings = self.contract.primary_key, self.settings
        accepted, quarantined, existing, old_q = inputs.accepted, inputs.quarantined, inputs.state, inputs.quarantine
        # One job for the quarantine's figures: per reason, rows and copies.
        by_reason = (
            quarantined.groupBy("reason").agg(F.count(F.lit(1)).alias("n"), F.sum("_copies").alias("copies")).collect()
        )
        per_reason = {r["reason"]: r["n"] for r in by_reason}
        a = accepted.agg(F.count(F.lit(1)).alias("n"), F.sum("_copies").alias("copies")).first()
        assert a is not None  # a global aggregate has one row, even over no rows
        acc, acc_copies = int(a["n"]), int(a["copies"] or 0)
        quar, quar_copies = sum(r["n"] for r in by_reason), sum(int(r["copies"] or 0) for r in by_reason)
        # Quarantined records already in the quarantine table (landed again, or a backfill) are copies too.
        q_again = quarantined.join(old_q.select(*POSITION), POSITION, "left_semi").count() if old_q is not None else 0
        new_keys = (
            accepted.select(key).distinct().join(existing.select(key), key, "left_anti").count()
            if existing is not None
            else accepted.select(key).distinct().count()
        )
        duplicates = (acc_copies - acc) + (quar_copies - quar) + q_again

        # Independent counts: footers of what the landing wrote and of what this run wrote.
        prev = self.current
        bronze_in = parquet_rows(settings, files)
        q_before = prev.get("quarantine_rows", 0) if prev else 0
        q_after = parquet_rows(settings, [written.quarantine])
        state_before = prev.get("silver_rows", 0) if prev else 0
        state_after = parquet_rows(settings, [written.state])
        quarantined_new = q_after - q_before
        checks = {
            "bronze": (
                bronze_in,
                acc + quarantined_new + duplicates,
                f"bronze_in {bronze_in} (footers) = accepted {acc} + quarantined {quarantined_new} (written) + duplicates {duplicates}",
            ),
            "silver": (
                state_after,
                state_before + new_keys,
                f"silver rows {state_after} (written) = {state_before} before + {new_keys} new keys",
            ),
            "quarantine": (
                quarantined_new,
                quar - q_again,
                f"quarantine rows written {quarantined_new} = quarantined {quar} - already there {q_again}",
            ),
        }
        failed = [text for got, want, text in checks.values() if got != want]
        if failed:
            raise ConservationError(
                "row conservation failed, nothing staged:\n  " + "\n  ".join(t.replace(" = ", " != ") for t in failed)
            )
        return {
            "bronze_objects": len(files),
            "bronze_in": bronze_in,
            "accepted": acc,
            "quarantined": quarantined_new,
            "duplicates": duplicates,
            "new_keys": new_keys,
            "changed": parquet_rows(settings, [written.changes]),
            "silver_rows": state_after,
            "quarantine_rows": q_after,
            "quarantine_reasons": dict(sorted(per_reason.items())),
            "conservation": {k: v[2] for k, v in checks.items()},
        }

    def _profile(self, state: DataFrame) -> dict:
        """Whole-table facts for the gate (it never loads the table): rows, distinct keys, and the
        drift baseline: live rows (not tombstones, which stay as their key's state but carry no
        values) and per column their null count and approximate distinct count."""
        contract = self.contract
        t = contract.tombstone
        live = F.lit(True) if t is None else ~F.col(t.column).eqNullSafe(F.lit(t.value))
        aggs = [
            F.count(F.lit(1)).alias("rows"),
            F.countDistinct(contract.primary_key).alias("keys"),
            F.sum(live.cast("long")).alias("live_rows"),
        ]
        for n in contract.names:
            aggs += [
                F.sum((live & F.col(n).isNull()).cast("long")).alias(f"n:{n}"),
                F.approx_count_distinct(F.when(live, F.col(n))).alias(f"d:{n}"),
            ]
        row = state.agg(*aggs).first()
        assert row is not None  # a global aggregate has one row, even over no rows
        r = row.asDict()
        return {
            "rows": r["rows"],
            "keys": r["keys"],
            "live_rows": int(r["live_rows"] or 0),
            "columns": {n: {"nulls": int(r[f"n:{n}"] or 0), "distinct": int(r[f"d:{n}"] or 0)} for n in contract.names},
        }


def seen_by_checkpoint(store: Store, checkpoint: str) -> set[str] | None:
    """The Bronze objects a file-source checkpoint has read, as the store names them, from Spark's
    own logs (`sources/0/<batch>[.compact]`: a "v1" line, then one JSON entry per file). None when
    the log cannot be read as expected or its last batch is not committed: then only a Spark run can
    tell what is new. Reading the log lets a quiet hour skip the Spark session altogether."""
    import json

    def batches(folder: str) -> dict[int, str]:
        out = {}
        for name in store.list_files(join(checkpoint, folder)):
            stem = name.removesuffix(".compact")
            if stem.isdigit():
                out[int(stem)] = name
        return out

    sources, offsets, commits = batches("sources/0"), batches("offsets"), batches("commits")
    if not offsets or max(offsets) not in commits:
        return None
    # A compacted file holds every entry up to its batch; later batches each add their own.
    start = max((b for b, n in sources.items() if n.endswith(".compact")), default=0)
    seen: set[str] = set()
    for b in sorted(b for b in sources if b >= start):
        lines = (store.get_text(join(checkpoint, "sources/0", sources[b])) or "").splitlines()
        if not lines or lines[0] != "v1":
            return None
        try:
            seen.update(_lake_uri(json.loads(line)["path"]) for line in lines[1:] if line.strip())
        except (ValueError, KeyError):
            return None
    return seen


def has_new_objects(ctx: RunContext, checkpoint: str) -> bool:
    """Whether Bronze holds an object the checkpoint has not read (True when unsure)."""
    seen = seen_by_checkpoint(ctx.store, checkpoint)
    if seen is None:
        return True
    base = bronze_table_uri(ctx.settings)  # one listing of the table, not one per hour of its span
    return any(_lake_uri(join(base, p)) not in seen for p in ctx.store.walk_files(base) if p.endswith(".parquet"))


def _stream_new_objects(ctx: RunContext, checkpoint: str, on_batch) -> bool:
    """Run the Bronze file source once over everything available now. Returns True when a batch ran."""
    spark = get_spark(ctx.settings)
    ran: dict = {}

    def each(df: DataFrame, batch_id: int) -> None:
        # Which objects this micro-batch holds (DataFrame.inputFiles() is empty for a streaming batch).
        files = sorted(_lake_uri(r[0]) for r in df.select("_file").distinct().collect())
        if not files:
            return
        try:
            ran["figures"] = on_batch(df, files)
        except BaseException as exc:  # re-raised below as itself, not as a StreamingQueryException
            ran["error"] = exc
            raise

    source = (
        spark.readStream.schema(bronze_spark_schema())
        # Bronze objects are immutable; an object is new because the checkpoint has not seen it, not
        # because it is recent. (The default would ignore objects older than 7 days.)
        .option("maxFileAge", "36500d")
        .parquet(spark_uri(bronze_table_uri(ctx.settings)))
        .select("*", F.col("_metadata.file_path").alias("_file"))
    )
    query = (
        source.writeStream.foreachBatch(each)
        .option("checkpointLocation", spark_uri(checkpoint))
        .queryName(f"bronze_to_silver-{ctx.run_id}"[:60])
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except Exception:
        if "error" in ran:
            raise ran["error"] from None
        raise
    return "figures" in ran


def _rebuild_reason(ctx: RunContext, current: VersionManifest | None) -> str | None:
    """Why this run rebuilds Silver from all of Bronze instead of merging into `current`, or None.
    `--all` asks for it. A backfill under a contract that shapes Silver otherwise than the one
    `current` was built with needs it: merged into the old state, a re-parsed event ties with its
    old row, so a new normaliser or a tightened rule would not reach it; and only a rebuild gives
    what a from-scratch run gives (the chosen hours are a subset of Bronze)."""
    if not ctx.backfill or current is None:
        return None
    if ctx.all_bronze:
        return "--all"
    if current.contract != ctx.contract.silver_fingerprint:
        return f"a backfill under a contract that changed since Silver {current.version}"
    return None


def _stage_nothing(ctx: RunContext, silver: SilverDataset, nothing_new: bool = True) -> dict:
    """Stage no version: the gate and the publish have nothing to do. Returns the run's figures."""
    silver.stage(ctx.run_id, None, {"bronze_in": 0})
    figures = {"bronze_in": 0, "accepted": 0, "quarantined": 0, "duplicates": 0, "staged": None}
    return {**figures, "nothing_new": True} if nothing_new else figures


def _build_version(
    ctx: RunContext,
    silver: SilverDataset,
    current: VersionManifest | None,
    rebuild: str | None,
    write: Write,
    checkpoint: str,
) -> dict | None:
    """Read the Bronze objects the checkpoint has not seen (plus a backfill's), and build them into
    the staged tables of one Silver version. Returns its figures; None when nothing was new."""
    settings = ctx.settings
    builder = SilverVersionBuilder(ctx, silver, None if rebuild else current, write)
    backfill = bronze_files_in(settings, ctx.interval, ctx.store) if ctx.backfill and not rebuild else []

    def on_batch(df: DataFrame, files: list[str]) -> dict:
        extra = sorted(set(backfill) - set(files))
        if extra:
            df = df.unionByName(
                builder.spark.read.schema(bronze_spark_schema())
                .option("basePath", spark_uri(bronze_table_uri(settings)))
                .parquet(*[spark_uri(f) for f in extra])
                .select("*", F.col("_metadata.file_path").alias("_file"))
            )
        return builder.build(df, files + extra)

    streamed = _stream_new_objects(ctx, checkpoint, on_batch)
    if not streamed and backfill:
        empty = builder.spark.createDataFrame([], bronze_spark_schema()).withColumn("_file", F.lit(None).cast("string"))
        on_batch(empty, [])
    return builder.figures


def run(ctx: RunContext) -> dict:
    """Find the Bronze objects Silver has not seen, build them into a new Silver version and stage it
    for the gate; or stage nothing when nothing is new."""
    settings, contract = ctx.settings, ctx.contract
    silver = silver_dataset(settings, ctx.store)
    with silver.lease(ctx.run_id):
        current = silver.current()
        rebuild = _rebuild_reason(ctx, current)
        problems = incompatibilities(contract, current.table_schema if current else None, rebuild=bool(rebuild))
        if problems:
            assert current is not None  # only a published schema has incompatibilities
            raise ConfigError(
                f"contract {contract.entity} v{contract.version} cannot extend the published Silver "
                f"{current and current.version}:\n  " + "\n  ".join(problems)
            )
        if not ctx.store.list_dirs(bronze_table_uri(settings)):
            if current is None:
                raise StageError(f"no Bronze data in {bronze_table_uri(settings)} and no Silver yet: land events first")
            return _stage_nothing(ctx, silver, nothing_new=False)

        if current and not ctx.backfill and not has_new_objects(ctx, current["checkpoint"]):
            # Spark's own checkpoint says every Bronze object is in Silver: no session, no job.
            log.info("bronze_to_silver: nothing new since Silver %s", current.version)
            return _stage_nothing(ctx, silver)

        write = silver.begin(ctx.run_id, keep=silver.waiting())
        checkpoint = silver.checkpoint_uri(write.write_id)
        if rebuild:
            # A fresh checkpoint reads every Bronze object, and nothing of the old version is merged.
            log.info("bronze_to_silver: rebuilding Silver from all of Bronze (%s)", rebuild)
        elif current:
            ctx.store.copy_prefix(current["checkpoint"], checkpoint)
        figures = _build_version(ctx, silver, current, rebuild, write, checkpoint)
        if figures is None:
            ctx.store.delete_prefix(checkpoint)  # nothing new: this version does not exist
            write.abort()
            log.info("bronze_to_silver: nothing new since Silver %s", current and current.version)
            return _stage_nothing(ctx, silver)

        silver.stage(
            ctx.run_id,
            write,
            {
                "checkpoint": checkpoint,
                "schema": schema_of(contract),
                "contract": contract.silver_fingerprint,
                "backfill": str(ctx.interval) if ctx.backfill else None,
                "rebuilt": rebuild,
                **figures,
            },
        )
        silver.gc()
    shown = {k: v for k, v in figures.items() if k != "profile"}
    return {"staged": write.write_id, **shown}
