"""The whole embedded pipeline, run in process with the shared Spark session.

One lake per module: a baseline run, then a rerun, a corrupted batch and a dirty batch on top.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mdp.core import catalog
from mdp.core.context import GateFailed, RunContext
from mdp.core.lake import Interval, spark_uri
from mdp.core.settings import get_settings
from mdp.core.stages import STAGES, get_stage
from mdp.core.tables import silver_dataset
from mdp.shell.runner import run_pipeline
from spark_apps.transforms import content_checksum
from tests.helpers import clean_events, corrupt, write_messages

pytestmark = pytest.mark.integration
HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)
EVENTS = 40_000


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark):
    settings = get_settings(home=tmp_path_factory.mktemp("e2e"), events=EVENTS, seed=7)
    report = run_pipeline(RunContext(settings, Interval.hour_of(HOUR)))
    return settings, report


def checksums(spark, settings):
    s_uris = [spark_uri(u) for u in catalog.files(settings, "silver.state")]
    g_uris = [spark_uri(u) for u in catalog.files(settings, "gold.features")]
    return content_checksum(spark.read.parquet(*s_uris)), content_checksum(spark.read.parquet(*g_uris))


def champion(settings):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    return str(client.get_model_version_by_alias(settings.model_name, "champion").version)


def test_rows_are_conserved_and_reported(lake):
    settings, report = lake
    checks = report.conservation()
    assert len(checks) == 3 and any(c.startswith(f"bronze_in {EVENTS} (footers)") for c in checks), checks
    f = report.figures("bronze_to_silver")
    assert f["bronze_in"] == EVENTS == f["accepted"] + f["quarantined"] + f["duplicates"]
    assert f["quarantined"] > 0 and f["duplicates"] > 0  # the generator's dirty share arrived
    assert sum(f["quarantine_reasons"].values()) == f["quarantined"]
    assert report.figures("silver_to_gold")["gold_rows"] == f["silver_rows"]
    q = catalog.read(settings, "silver.quarantine")
    assert q.num_rows == f["quarantined"]
    assert all(q.column("reason").to_pylist())


def test_model_is_good_and_registered_as_champion(lake):
    settings, report = lake
    t = report.figures("train_model")
    assert t["roc_auc"] >= 0.75, t
    assert t["promoted"] and champion(settings) == t["model_version"]
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    run = mlflow.get_run(t["run_id"])
    # The Delta version
    assert run.data.params["gold_snapshot"] == str(report.figures("silver_to_gold")["gold_snapshot"])
    assert {"roc_auc", "f1", "precision", "recall", "accuracy"} <= set(run.data.metrics)
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(t["run_id"], "plots")}
    assert arts == {"plots/roc_curve.png", "plots/confusion_matrix.png", "plots/feature_importance.png"}
    # Artifacts live in the lake's mlflow layer, like the `mlflow` bucket in a deployment.
    assert run.info.artifact_uri.startswith(settings.layer_uri("mlflow"))


def test_data_docs_are_in_the_lake(lake):
    settings, report = lake
    docs = report.figures("validate_silver")["data_docs"]
    path = docs.removeprefix("file://")
    html = open(path).read()
    assert "customers" in html.lower()


def test_rerun_of_the_same_input_changes_nothing(lake, spark):
    settings, _ = lake
    before = (
        checksums(spark, settings),
        silver_dataset(settings).current()["version"],
        catalog.current_version(settings, "gold.features"),
    )
    stages = [s for s in STAGES if s.name != "train_model"]
    # The generator lands the same hour again
    report = run_pipeline(RunContext(settings, Interval.hour_of(HOUR)), stages)
    assert (
        report.figures("bronze_to_silver")["bronze_in"] == 0 and report.figures("validate_silver")["published"] is False
    )
    after = (
        checksums(spark, settings),
        silver_dataset(settings).current()["version"],
        catalog.current_version(settings, "gold.features"),
    )
    assert after == before


def test_corrupted_batch_stops_at_the_gate(lake, spark):
    settings, _ = lake
    hour = HOUR + timedelta(hours=1)
    events = clean_events(11, hour, 2000)
    write_messages(settings, hour, corrupt(events, email=lambda e: e.replace("@", "#")))
    silver_before = silver_dataset(settings).current()["version"]
    gold_before = catalog.current_version(settings, "gold.features")
    champ_before = champion(settings)
    ctx = RunContext(settings, Interval.hour_of(hour), run_id="corrupted")
    with pytest.raises(GateFailed) as err:
        run_pipeline(
            ctx,
            [
                get_stage("bronze_to_silver"),
                get_stage("validate_silver"),
                get_stage("silver_to_gold"),
                get_stage("train_model"),
            ],
        )
    msg = str(err.value)
    assert "expect_column_values_to_match_regex(email)" in msg and "quality.max_per_rule" in msg and "Data Docs" in msg
    assert [r.stage for r in ctx.report.results] == ["bronze_to_silver"]  # nothing after the gate ran
    assert silver_dataset(settings).current()["version"] == silver_before
    assert silver_dataset(settings).staged("corrupted")["status"] == "rejected"
    assert catalog.current_version(settings, "gold.features") == gold_before
    assert champion(settings) == champ_before
    # Clearing the gate task (running it again for the same run) cannot turn the run green.
    with pytest.raises(GateFailed):
        run_pipeline(ctx, [get_stage("validate_silver")])
    # The rejected objects are not consumed: the next run reads them again and stops again.
    with pytest.raises(GateFailed):
        run_pipeline(
            RunContext(settings, Interval.hour_of(hour), run_id="again"),
            [get_stage("bronze_to_silver"), get_stage("validate_silver")],
        )
    assert silver_dataset(settings).staged("again")["bronze_in"] == 2000
    # Tidy for the next test: these events are not part of the story any more.
    from mdp.core.lake import bronze_partition, bronze_table_uri
    from mdp.core.storage import join, store_for

    store_for(settings).delete_prefix(join(bronze_table_uri(settings), bronze_partition(hour)))


def test_malformed_and_unknown_fields_are_quarantined_while_the_rest_flows(lake):
    settings, _ = lake
    hour = HOUR + timedelta(hours=2)
    good = clean_events(12, hour, 1000)
    bad = [b'{"event_id": oops', b"\xff\xfe not utf8", b""] + [
        json.dumps({**e, "vip_flag": True}).encode() for e in clean_events(13, hour, 20)
    ]
    write_messages(settings, hour, [json.dumps(e).encode() for e in good] + bad)
    ctx = RunContext(settings, Interval.hour_of(hour))
    report = run_pipeline(ctx, [get_stage("bronze_to_silver"), get_stage("validate_silver")])
    f = report.figures("bronze_to_silver")
    assert f["bronze_in"] == 1023
    assert f["quarantine_reasons"] == {"unparseable_json": 3, "unknown_field": 20}
    assert f["quarantined"] == 23 and f["accepted"] == 1000
    assert report.figures("validate_silver")["published"] is True
    q = catalog.read(settings, "silver.quarantine").to_pandas()
    hour_rows = q[q.ingest_hour == f"{hour:%H}"]
    assert len(hour_rows) == 23 and set(hour_rows.reason) == {"unparseable_json", "unknown_field"}


def test_an_independent_delta_reader_gets_the_same_rows_at_every_version(lake, tmp_path):
    """DuckDB's own delta extension (delta-kernel-rs, tests/delta_reader.py) reads every version of
    Silver and Gold that this story published, and gets the rows mdp's reader gets: the tables are
    Delta tables, not only readable by the code that wrote them."""
    from pathlib import Path

    from mdp.core.tables import delta_uri, gold_dataset
    from tests.delta_reader import read_versions

    settings, _ = lake
    wanted, ours = [], []
    for data, table in (
        (silver_dataset(settings), "state"),
        (silver_dataset(settings), "quarantine"),
        (gold_dataset(settings), "features"),
    ):
        t = data.table(table)
        for version in range(t.version() + 1):
            wanted.append((Path(delta_uri(t.uri)), version))
            ours.append(t.to_arrow(version))
    assert sum(1 for folder, _ in wanted if folder.name == "state") >= 2, wanted  # the later hours made versions
    theirs = read_versions(wanted, tmp_path)

    def rows(table):
        return sorted(repr(tuple(r.values())) for r in table.to_pylist())

    for (folder, version), mine, other in zip(wanted, ours, theirs, strict=True):
        assert other.num_rows == mine.num_rows, (folder, version)
        assert rows(other.select(mine.column_names).cast(mine.schema)) == rows(mine), (folder, version)
