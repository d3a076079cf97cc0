"""score_customers: the champion's score for every entity of the current Gold snapshot.

1. Resolve `<model>@champion` to a version (none yet: the stage is a no-op that says so).
2. Skip when the scores dataset already holds this (Gold snapshot, model version): a rerun is free.
3. Otherwise score: in the driver for a Gold snapshot up to `score_in_driver_max_rows` (the model
   loaded once, no Python worker to start), else in Spark: the model's files are shipped to the workers as one archive
   (SparkContext.addArchive: a cluster master refuses a local directory) and each partition is
   scored by mapInPandas, with the same input preparation as training
   (training.model.model_input). Nothing is collected to the driver.
4. Stage the scores in the gold/<entity>/<scores>/ Delta table (one row per entity: key, score,
   model name and version, Gold snapshot) and commit them as its next version, as Gold is published.
5. Where postgres_dsn is set, mirror the published scores into the `<entity>_<scores>` table
   (scoring/postgres.py): an upsert, so a rerun leaves one row per entity.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mdp.core.context import RunContext
from mdp.core.errors import ConservationError, StageError
from mdp.core.lake import arrow_filesystem, arrow_path, parquet_rows, spark_uri
from mdp.core.manifests import VersionManifest
from mdp.core.tables import gold_dataset, scores_dataset, spark_paths
from scoring import champion
from scoring.champion import META, SCORE

log = logging.getLogger(__name__)


def score_partitions(model_archive: str, contract, meta: dict):
    """mapInPandas function: Gold rows -> (key, score, meta...) rows, the model loaded once per worker."""
    key = contract.primary_key

    def fn(batches):
        import pandas as pd
        from pyspark import SparkFiles

        model = champion.load(SparkFiles.get(model_archive))  # the archive, unpacked on this worker
        for rows in batches:
            if rows.empty:
                continue
            out = pd.DataFrame({key: rows[key].to_numpy(), SCORE: champion.score_frame(model, rows, contract)})
            for k, v in meta.items():
                out[k] = v
            yield out

    return fn


def scores_schema(gold_schema, contract):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    return StructType(
        [
            gold_schema[contract.primary_key],
            StructField(SCORE, DoubleType(), False),
            *[StructField(m, StringType(), False) for m in META],
        ]
    )


def write_scores(ctx: RunContext, ref: champion.ChampionRef, gold: VersionManifest, target: str) -> str:
    """Score the Gold snapshot and write the scores to `target`: in the driver up to
    score_in_driver_max_rows (a Python worker's start and imports cost more than scoring a few
    hundred thousand rows), else in Spark's workers. Returns where it scored."""
    settings = ctx.settings
    source = gold_dataset(settings, ctx.store).files("features", gold.version)
    meta = {"model_name": ref.name, "model_version": ref.version, "gold_snapshot": str(gold.version)}
    local = champion.download(settings, ref).rstrip("/")
    try:
        if gold["rows"] <= settings.score_in_driver_max_rows:
            _score_in_driver(ctx, local, ref, source, target, meta)
            return "driver"
        _score_in_spark(ctx, local, ref, source, target, meta)
        return "spark"
    finally:
        shutil.rmtree(local, ignore_errors=True)
        Path(f"{local}.zip").unlink(missing_ok=True)


def _score_in_driver(
    ctx: RunContext, local: str, ref: champion.ChampionRef, source: list[str], target: str, meta: dict
) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    settings, contract = ctx.settings, ctx.contract
    gold = ds.dataset(
        [arrow_path(u) for u in source], format="parquet", filesystem=arrow_filesystem(settings)
    ).to_table()
    champion.check_inputs(local, ref, contract, gold.column_names)
    key = contract.primary_key
    frame = gold.to_pandas()
    scores = champion.score_frame(champion.load(local), frame, contract)
    # The schema scores_schema gives Spark's writer: the key as in Gold, a score, the meta strings.
    fields = [
        gold.schema.field(key),
        pa.field(SCORE, pa.float64(), nullable=False),
        *[pa.field(m, pa.string(), nullable=False) for m in META],
    ]
    table = pa.table(
        [
            gold.column(key),
            pa.array(scores, pa.float64()),
            *[pa.array([meta[m]] * len(frame), pa.string()) for m in META],
        ],
        schema=pa.schema(fields),
    )
    fs = arrow_filesystem(settings)
    folder = arrow_path(target)
    fs.create_dir(folder, recursive=True)
    pq.write_table(table, f"{folder}/part-00000.parquet", filesystem=fs, compression="zstd")


def _score_in_spark(
    ctx: RunContext, local: str, ref: champion.ChampionRef, source: list[str], target: str, meta: dict
) -> None:
    from spark_apps.session import get_spark

    settings, contract = ctx.settings, ctx.contract
    spark = get_spark(settings)
    frame = spark.read.parquet(*spark_paths(source))
    champion.check_inputs(local, ref, contract, frame.columns)
    archive = shutil.make_archive(local, "zip", root_dir=local)
    spark.sparkContext.addArchive(archive)
    scored = frame.mapInPandas(
        score_partitions(Path(archive).name, contract, meta), scores_schema(frame.schema, contract)
    )
    scored.write.mode("overwrite").parquet(spark_uri(target))


def run(ctx: RunContext) -> dict:
    settings = ctx.settings
    gold = gold_dataset(settings, ctx.store).current()
    if not gold:
        raise StageError("no Gold snapshot: run silver_to_gold first")
    ref = champion.resolve(settings)
    if ref is None:
        reason = champion.no_champion_reason(settings.model_name)
        log.warning("score_customers: nothing scored: %s", reason)
        return {"scored": 0, "gold_snapshot": gold.version, "skipped": reason}
    dataset = scores_dataset(settings, ctx.store)
    with dataset.lease(ctx.run_id):
        current = dataset.current()
        done = current and (current.gold_snapshot, current.model_name, current.model_version)
        if current and done == (gold.version, ref.name, ref.version):
            version, rows, new, scored_in = current.version, current["rows"], False, None
        else:
            write = dataset.begin(ctx.run_id)
            target = write.staging(dataset.tables[-1])
            scored_in = write_scores(ctx, ref, gold, target)
            rows = parquet_rows(settings, [target])
            if rows != gold["rows"]:  # every Gold entity has exactly one score
                write.abort()
                raise ConservationError(
                    f"scored {rows} rows of Gold snapshot {gold.version}, which has {gold['rows']}; "
                    "the scores were not published"
                )
            version = write.commit(
                {"gold_snapshot": gold.version, "model_name": ref.name, "model_version": ref.version, "rows": rows}
            )
            dataset.vacuum()
            new = True
    figures = {
        "scored": rows,
        "scores_version": version,
        "gold_snapshot": gold.version,
        "model_version": ref.version,
        "new_scores": new,
        **({"scored_in": scored_in} if new else {"nothing_new": True}),
    }
    if settings.postgres_dsn:
        from scoring.postgres import sync

        figures.update(sync(settings, dataset, version))
    return figures
