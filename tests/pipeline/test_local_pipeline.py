"""The `local` profile end to end on real servers: Postgres -> Kafka -> Bronze in S3 -> Silver (Spark,
s3a://) -> GX gate -> Gold -> MLflow server (Postgres backend, artifacts in the `mlflow` bucket).

One pipeline run (module scope) serves the S3, Spark and MLflow assertions below; S3 bootstrap and
the wrong-key error need no run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.postgres_source import WatermarkPublisher, seed
from ingestion.producer import produce_generated
from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.lake import Interval, spark_uri
from mdp.core.settings import LAYERS, ConfigError, get_settings
from mdp.core.stages import get_stage
from mdp.core.tables import silver_dataset
from mdp.shell.runner import run_pipeline, run_stage
from spark_apps.session import get_spark
from tests.server_helpers import subprocess_env

pytestmark = pytest.mark.integration

CUSTOMERS, EVENTS = 1500, 4000


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


@pytest.fixture(scope="module")
def pipeline_run(stack, postgres, kafka, s3, mlflow_server, spark, tmp_path_factory):
    """Seed Postgres and publish it, produce generated (dirty) events, then run every stage."""
    from spark_apps.session import s3a_jars

    if not s3a_jars():
        pytest.skip(
            "no hadoop-aws/AWS SDK jars for s3a://: pip install --no-deps sagemaker-pyspark==1.4.5 or set MDP_SPARK_JARS_DIR"
        )
    settings = get_settings(
        **{
            **stack.settings_overrides(),
            "home": tmp_path_factory.mktemp("local"),
            "events": EVENTS,
            "dirty_fraction": 0.03,
        }
    )
    assert settings.lake_root == "s3://" and settings.source == "kafka"
    seeded = seed(settings, customers=CUSTOMERS)
    publisher = WatermarkPublisher(settings)
    try:
        from_postgres = publisher.poll_once()
    finally:
        publisher.close()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    produced = produce_generated(settings, [hour])
    now = datetime.now(UTC)  # records carry broker time: cover an hour flip during the test
    interval = Interval(
        Interval.hour_of(now - timedelta(hours=1)).start, Interval.hour_of(now + timedelta(minutes=30)).end
    )
    ctx = RunContext(settings=settings, interval=interval, run_id="local-e2e")
    with pytest.MonkeyPatch.context() as mp:
        # The MLflow client talks HTTP only: no S3 endpoint or keys in its environment.
        for var in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.delenv(var, raising=False)
        report = run_pipeline(ctx)
    return {
        "settings": settings,
        "ctx": ctx,
        "report": report,
        "seeded": seeded,
        "from_postgres": from_postgres,
        "produced": produced["produced"],
    }


def test_full_local_pipeline_conserves_rows(pipeline_run):
    r, report = pipeline_run, pipeline_run["report"]
    assert r["from_postgres"] == r["seeded"] > 1000
    land = report.figures("land_bronze")
    assert land["landed"] == r["from_postgres"] + r["produced"] == land["in_interval"]
    assert len(report.conservation()) == 3
    b2s = report.figures("bronze_to_silver")
    assert b2s["bronze_in"] == land["landed"]
    assert 0 < b2s["quarantined"] < 0.1 * b2s["bronze_in"]  # the generator's dirt, none of Postgres' rows
    assert report.figures("validate_silver")  # the gate ran and passed (a failure raises)
    gold = report.figures("silver_to_gold")
    assert gold["gold_rows"] == b2s["silver_rows"] >= r["seeded"]  # every Postgres customer is in Gold
    train = report.figures("train_model")
    assert train["model_version"] and train["roc_auc"] > 0.5


def test_spark_wrote_silver_and_gold_to_s3(pipeline_run, s3):
    settings, ctx = pipeline_run["settings"], pipeline_run["ctx"]
    client = s3.s3_client()
    assert any(k.endswith(".parquet") for k in keys(client, "bronze", "customers/"))  # boto3
    state = silver_dataset(settings).files("state")
    assert state and all(u.startswith("s3://silver/customers/state/") for u in state)  # Spark wrote them, s3a
    table = catalog.read(settings, "gold.features")  # delta-rs over S3
    assert table.num_rows == pipeline_run["report"].figures("silver_to_gold")["gold_rows"]
    # Spark reads S3 back: the published Silver has the rows bronze_to_silver counted.
    rows = get_spark(ctx.settings).read.parquet(*[spark_uri(u) for u in state]).count()
    assert rows == pipeline_run["report"].figures("bronze_to_silver")["silver_rows"]


def test_training_logged_run_and_model_to_the_server(pipeline_run, mlflow_server):
    settings, train = pipeline_run["settings"], pipeline_run["report"].figures("train_model")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_uri)
    run = client.get_run(train["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # clients log over HTTP; the server writes S3
    assert run.data.metrics["roc_auc"] == pytest.approx(train["roc_auc"], abs=1e-3)
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == train["champion"]

    objects = keys(mlflow_server.s3_client(), "mlflow")
    assert any(train["run_id"] in k and k.endswith(".png") for k in objects), objects[:20]  # the plots
    mv = client.get_model_version(settings.model_name, train["model_version"])
    model_id = getattr(mv, "model_id", None) or mv.source.rsplit("/", 1)[-1]
    assert any(model_id in k and k.endswith("/MLmodel") for k in objects), (model_id, objects[:20])


def test_buckets_are_bootstrapped_idempotently(s3, uid):
    client = s3.s3_client()
    assert set(LAYERS) <= {b["Name"] for b in client.list_buckets()["Buckets"]}  # created by `up`
    assert s3.bootstrap_s3() == []  # again: nothing to do, no error
    extra = f"boot-{uid}"
    assert s3.bootstrap_s3((*LAYERS, extra)) == [extra]
    assert s3.bootstrap_s3((*LAYERS, extra)) == []


def test_a_folder_marker_is_not_a_file(stack, s3, uid, tmp_path):
    """pyarrow writes `<folder>/` marker objects on S3: listing and copying a folder skip them."""
    from mdp.core.storage import store_for

    store = store_for(get_settings(**{**stack.settings_overrides(), "home": tmp_path}))
    s3.s3_client().put_object(Bucket="gold", Key=f"markers-{uid}/v=1/", Body=b"")
    store.put_bytes(f"s3://gold/markers-{uid}/v=1/part-0.parquet", b"x")
    assert (
        store.walk_files(f"s3://gold/markers-{uid}/v=1")
        == store.list_files(f"s3://gold/markers-{uid}/v=1")
        == ["part-0.parquet"]
    )
    assert store.copy_prefix(f"s3://gold/markers-{uid}/v=1", f"s3://gold/markers-{uid}/v=2") == 1


def test_wrong_secret_key_fails_with_a_clear_error(s3, local_settings, topic):
    s = local_settings(source="kafka", kafka_topic=topic, AWS_SECRET_ACCESS_KEY="not-the-secret")
    ctx = RunContext(settings=s, interval=Interval.hour_of(datetime.now(UTC)))
    with pytest.raises(ConfigError, match=rf"S3 at {s.s3_endpoint} rejected the credentials"):
        run_stage(get_stage("land_bronze"), ctx)

    # The same through the CLI: exit code 2 (configuration), one clear line, no traceback, no secret.
    res = subprocess.run(
        [sys.executable, "-m", "mdp.shell.cli", "stage", "land_bronze"],
        env=subprocess_env(s),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert s.s3_endpoint in res.stderr and "rejected the credentials" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout and "not-the-secret" not in res.stderr + res.stdout


def test_services_cli_reports_the_running_stack(stack, postgres, kafka, s3, mlflow_server):
    home = stack.root.parent.parent
    cli = [sys.executable, "-m", "mdp.shell.cli", "services"]
    status = subprocess.run([*cli, "status", "--home", str(home)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("postgres", "s3", "kafka", "mlflow"):
        assert any(line.startswith(name) and line.endswith("healthy") for line in status.stdout.splitlines()), (
            status.stdout
        )
    env = subprocess.run([*cli, "env", "--home", str(home)], capture_output=True, text=True, timeout=60)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
    assert (
        exports["MDP_KAFKA_BOOTSTRAP"] == stack.kafka_bootstrap
        and exports["AWS_SECRET_ACCESS_KEY"] == stack.config.s3_secret_key
    )
    # `up` on a running stack is a no-op that still succeeds (idempotent), and prints the exports.
    up = subprocess.run(
        [*cli, "up", "--home", str(home), "--only", "kafka"], capture_output=True, text=True, timeout=60
    )
    assert up.returncode == 0 and "export AWS_ACCESS_KEY_ID=" in up.stdout, up.stderr
    assert json.dumps(exports)  # printable


def _score_table(settings):
    from ingestion.postgres_source import connect

    c = settings.data_contract
    with connect(settings) as conn:
        rows = conn.execute(
            f'SELECT "{c.primary_key}", score, model_version, gold_snapshot FROM "{c.scores_table}"'
        ).fetchall()
    return {r[0]: r[1:] for r in rows}, len(rows)


def test_scores_reach_postgres_and_a_rerun_upserts(pipeline_run):
    """score_customers ran in the pipeline: the Postgres table holds exactly the lake's scores; a rerun
    is a no-op; a table that drifted (rows lost, a stale entity) is upserted back, with no duplicates."""
    from ingestion.postgres_source import connect

    settings, report = pipeline_run["settings"], pipeline_run["report"]
    scored, train = report.figures("score_customers"), report.figures("train_model")
    assert (
        scored["scored"] == report.figures("silver_to_gold")["gold_rows"]
        and scored["model_version"] == train["champion"]
    )
    assert scored["postgres_table"] == "customer_churn_scores" and scored["postgres_upserted"] == scored["scored"]
    lake = catalog.read(settings, f"gold.{settings.data_contract.scores_name}", scored["scores_version"]).to_pandas()
    expected = {r.customer_id: (r.score, r.model_version, r.gold_snapshot) for r in lake.itertuples()}
    table, n = _score_table(settings)
    assert n == len(expected) and table == expected

    def rerun() -> dict:
        with pytest.MonkeyPatch.context() as mp:
            for var in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                mp.delenv(var, raising=False)
            return run_stage(get_stage("score_customers"), pipeline_run["ctx"]).figures

    again = rerun()
    assert not again["new_scores"] and again["scores_version"] == scored["scores_version"]
    assert (again["postgres_upserted"], again["postgres_deleted"]) == (0, 0)
    assert _score_table(settings) == (expected, len(expected))

    lost = sorted(expected)[:10]
    with connect(settings) as conn:
        conn.execute("DELETE FROM customer_churn_scores WHERE customer_id = ANY(%s)", (lost,))
        conn.execute(
            "INSERT INTO customer_churn_scores (customer_id, score, model_name, model_version, gold_snapshot) "
            "VALUES ('C9999999', 0.5, 'm', '0', 'old')"
        )
    repaired = rerun()
    assert (repaired["postgres_upserted"], repaired["postgres_deleted"]) == (10, 1)
    assert _score_table(settings) == (expected, len(expected))


def test_a_slow_sync_of_older_scores_does_not_overwrite_newer_ones(pipeline_run):
    """Issue 20 item 13: syncs run outside the scores' lease. One that waits its turn while a newer
    version is published copies nothing: the table keeps the newer scores."""
    import threading

    from ingestion.postgres_source import connect
    from mdp.core.tables import scores_dataset
    from scoring.postgres import sync

    settings = pipeline_run["settings"]
    dataset = scores_dataset(settings)
    older = dataset.current()
    table_before = _score_table(settings)
    # The same rows under a newer version, as a later scoring run would publish.
    write = dataset.begin("newer-scores")
    for i, uri in enumerate(dataset.files(version=older["version"])):
        dataset.store.put_bytes(
            f"{write.staging(dataset.tables[-1])}/part-{i:05d}.parquet", dataset.store.get_bytes(uri)
        )
    manifest = {k: older[k] for k in ("gold_snapshot", "model_name", "model_version", "rows")}

    results: dict = {}
    with connect(settings) as holder:  # another sync holds the table's turn
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mdp-scores-sync:{settings.data_contract.scores_table}",)
        )
        slow = threading.Thread(target=lambda: results.update(sync(settings, dataset, older["version"])))
        slow.start()
        with connect(settings) as probe:  # the older sync is waiting on the lock, not done
            for _ in range(600):
                waiting = probe.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]
                if waiting or not slow.is_alive():
                    break
                probe.execute("SELECT pg_sleep(0.05)")
        assert waiting == 1 and slow.is_alive()
        newer = write.commit(manifest)
        holder.rollback()  # the turn passes
    slow.join(timeout=120)
    assert results["postgres_skipped"] == f"scores {older['version']} were superseded by {newer}"
    assert results["postgres_upserted"] == results["postgres_deleted"] == 0
    assert _score_table(settings) == table_before
    assert sync(settings, dataset, newer)["postgres_table"] == settings.data_contract.scores_table
