"""dag.test() on the embedded profile: real Airflow, sqlite metadata DB, tasks in process.

Runs on one lake (module scope, so the later ones have a baseline to leave unchanged):
1. a good hour (05:00, from the run's data interval): every task succeeds, MLflow has the run;
2. the next hour (06:00, from params since/until) with an extra Bronze file whose emails are
   all malformed: validate_silver fails once (no retry) with the failed expectations and the
   Data Docs path in the log, the two downstream tasks never run, Silver, Gold and the model
   registry are unchanged;
3. after a pause of three hours whose data landed meanwhile, one run triggered with no params
   (a user clicking Trigger) processes all of it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from airflow_helpers import DAG_ID, load_dagbag

pytestmark = pytest.mark.integration

GOOD_HOUR = datetime(2026, 1, 1, 5, tzinfo=UTC)
BAD_HOUR = GOOD_HOUR + timedelta(hours=1)
EVENTS = 4000


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """MDP_HOME for both runs (module scoped), small data."""
    home = tmp_path_factory.mktemp("mdp-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MDP_HOME", str(home))
    mp.setenv("MDP_PROFILE", "embedded")
    mp.setenv("MDP_EVENTS", str(EVENTS))
    yield home
    mp.undo()


@pytest.fixture(scope="module")
def dag(lake, airflow_db):
    bag = load_dagbag()
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def tries(dag_run) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}


def settings():
    from mdp.core.settings import get_settings

    return get_settings()


def model_versions(s) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(s.mlflow_uri, s.mlflow_uri)
    return sorted(str(mv.version) for mv in client.search_model_versions(f"name='{s.model_name}'"))


@pytest.fixture(scope="module")
def good_run(dag, spark):
    # logical_date 06:30 -> the @hourly data interval [05:00, 06:00): the hour the run processes.
    dr = dag.test(logical_date=GOOD_HOUR + timedelta(hours=1, minutes=30))
    return dr


def test_end_to_end_every_task_succeeds(good_run):
    assert str(good_run.state) == "success", states(good_run)
    assert states(good_run) == {
        t: "success"
        for t in (
            "land_bronze",
            "bronze_to_silver",
            "validate_silver",
            "silver_to_gold",
            "train_model",
            "score_customers",
        )
    }
    assert good_run.data_interval_start == GOOD_HOUR


def test_end_to_end_mlflow_has_the_new_run(good_run):
    from mlflow.tracking import MlflowClient

    s = settings()
    client = MlflowClient(s.mlflow_uri, s.mlflow_uri)
    exp = client.get_experiment_by_name(s.experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["interval"] == "[2026-01-01T05:00Z, 2026-01-01T06:00Z)"
    assert "roc_auc" in run.data.metrics
    mv = client.get_model_version_by_alias(s.model_name, "champion")
    assert mv.run_id == run.info.run_id


def test_end_to_end_xcom_has_stage_figures(good_run):
    ti = next(t for t in good_run.get_task_instances() if t.task_id == "land_bronze")
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=DAG_ID, run_id=good_run.run_id, task_id=ti.task_id, key="return_value")
            .one()
        )
    value = row.value if isinstance(row.value, dict) else json.loads(row.value)
    assert value["landed"] == EVENTS


def write_malformed_batch(s, hour: datetime, n: int) -> list[str]:
    """An extra Bronze file in the hour's partition: valid events, except every email is malformed."""
    from ingestion.bronze import RawRecord, write_bronze
    from ingestion.generator import generate_hour, ingest_time
    from mdp.core.storage import store_for

    records = []
    for i, e in enumerate(generate_hour(s.seed + 1000, hour, n, 0.0)):
        doc = json.loads(e.message)
        doc["email"] = f"not-an-email-{i}"
        records.append(RawRecord(json.dumps(doc).encode(), e.customer_id.encode(), 9, i, ingest_time(hour, i, n)))
    return write_bronze(s, store_for(s), records, source="test", topic=s.topic)


def test_corrupted_batch_stops_at_the_gate(good_run, dag, capfd):
    from mdp.core.tables import gold_dataset, silver_dataset

    assert str(good_run.state) == "success", "the good run is the baseline"
    s = settings()
    gold_before = gold_dataset(s).current()
    silver_before = silver_dataset(s).current()
    models_before = model_versions(s)
    assert gold_before and silver_before and models_before == ["1"]

    written = write_malformed_batch(s, BAD_HOUR, EVENTS // 2)
    assert written and all("ingest_hour=06" in u and "part-test-" in u for u in written)

    dr = dag.test(
        logical_date=None,
        run_conf={"since": BAD_HOUR.isoformat(), "until": (BAD_HOUR + timedelta(hours=1)).isoformat()},
    )
    out = capfd.readouterr()
    st = states(dr)
    assert str(dr.state) == "failed"
    assert st["land_bronze"] == "success" and st["bronze_to_silver"] == "success"
    assert st["validate_silver"] == "failed"
    assert st["silver_to_gold"] == st["train_model"] == st["score_customers"] == "upstream_failed"
    assert tries(dr)["validate_silver"] == 1  # failed for good, no retry

    # The task log says which expectations failed and where the Data Docs are.
    text = out.out + out.err
    assert "Failed expectations" in text
    assert "expect_column_values_to_match_regex(email)" in text
    assert "Data Docs:" in text
    docs = text.split("Data Docs:", 1)[1].split()[0]
    assert docs.endswith("index.html")

    # Nothing downstream moved.
    assert gold_dataset(s).current() == gold_before
    assert silver_dataset(s).current() == silver_before
    assert silver_dataset(s).staged(dr.run_id)["status"] == "rejected"
    assert model_versions(s) == models_before

    # The rejected objects stay unconsumed; remove them so the next scenario starts clean.
    from mdp.core.lake import bronze_partition, bronze_table_uri
    from mdp.core.storage import join, store_for

    store_for(s).delete_prefix(join(bronze_table_uri(s), bronze_partition(BAD_HOUR)))


def test_a_paused_dag_catches_up_in_its_next_run(good_run, dag):
    """Three hours land while the DAG is paused (catchup=False: resuming gives one run, not three);
    that one run, triggered with no params, merges all three hours."""
    from ingestion.land import land_from_generator
    from mdp.core.context import RunContext
    from mdp.core.lake import Interval

    s = settings()
    paused = Interval(BAD_HOUR + timedelta(hours=1), BAD_HOUR + timedelta(hours=4))
    landed = land_from_generator(RunContext(s, paused))["landed"]
    dr = dag.test(logical_date=None)
    assert str(dr.state) == "success", states(dr)
    b2s, land = xcom(dr, "bronze_to_silver"), xcom(dr, "land_bronze")
    assert b2s["bronze_in"] == landed + land["landed"] == 4 * EVENTS


def xcom(dag_run, task_id: str) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=DAG_ID, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one()
        )
    return row.value if isinstance(row.value, dict) else json.loads(row.value)
