"""The DAG parses from files with no import errors, and has the shape, retries and timeouts we chose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from mdp.core.lake import Interval
from mdp.core.stages import STAGE_NAMES, STAGES

pytestmark = pytest.mark.unit

DAG_ID = "customers_end_to_end"


@pytest.fixture(scope="module")
def embedded_dag():
    mp = pytest.MonkeyPatch()
    mp.setenv("MDP_PROFILE", "embedded")
    from airflow_helpers import load_dagbag

    bag = load_dagbag()
    mp.undo()
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags[DAG_ID]


def test_dag_folder_imports_without_errors(embedded_dag):
    assert embedded_dag.dag_id == DAG_ID


def test_schedule_catchup_and_concurrency(embedded_dag):
    from airflow.sdk import CronDataIntervalTimetable

    tt = embedded_dag.timetable
    # A data-interval timetable: each scheduled run covers the hour before it (not a zero-length instant).
    assert isinstance(tt, CronDataIntervalTimetable)
    assert tt.expression == "0 * * * *"  # @hourly
    assert str(getattr(tt.timezone, "name", tt.timezone)) == "UTC"
    assert embedded_dag.catchup is False
    assert embedded_dag.max_active_runs == 1
    assert embedded_dag.dagrun_timeout == timedelta(hours=3)
    assert set(embedded_dag.params.keys()) >= {"since", "until"}


def test_tasks_follow_the_stage_registry(embedded_dag):
    assert [t.task_id for t in embedded_dag.topological_sort()] == list(STAGE_NAMES)
    assert len(embedded_dag.tasks) == len(STAGES)
    for a, b in zip(STAGE_NAMES, STAGE_NAMES[1:], strict=False):
        assert embedded_dag.get_task(a).downstream_task_ids == {b}
    assert embedded_dag.get_task(STAGE_NAMES[-1]).downstream_task_ids == set()


def test_retries_and_timeouts(embedded_dag):
    for stage in STAGES:
        t = embedded_dag.get_task(stage.name)
        assert t.retries == 2, stage.name
        assert t.retry_delay == timedelta(minutes=1)
        assert t.retry_exponential_backoff
        assert t.max_retry_delay == timedelta(minutes=10)
        expected = timedelta(minutes=45) if stage.kind == "spark" else timedelta(minutes=30)
        assert t.execution_timeout == expected, stage.name


def test_assets_come_from_stage_outputs_named_by_the_contract(embedded_dag):
    from mdp.core.settings import get_settings

    settings = get_settings()
    for stage in STAGES:
        outlets = embedded_dag.get_task(stage.name).outlets
        assert [a.name for a in outlets] == list(stage.output_names(settings))
        assert all(a.uri == f"mdp://{a.name}" for a in outlets)
    assert [a.name for a in embedded_dag.get_task("silver_to_gold").inlets] == ["silver/customers"]
    assert [a.name for a in embedded_dag.get_task("train_model").inlets] == ["gold/customers/features"]
    assert [a.name for a in embedded_dag.get_task("score_customers").inlets] == ["mlflow/customers-churn"]
    assert [a.name for a in embedded_dag.get_task("score_customers").outlets] == ["gold/customers/churn_scores"]


def test_a_continuous_lander_takes_land_bronze_out_of_the_dag(monkeypatch):
    from airflow_helpers import DAG_ID, load_dagbag

    monkeypatch.setenv("MDP_CONTINUOUS_LANDING", "true")
    dag = load_dagbag().dags[DAG_ID]
    assert [t.task_id for t in dag.topological_sort()][0] == "bronze_to_silver"


def test_inline_profile_uses_taskflow(embedded_dag):
    assert {type(t).__name__ for t in embedded_dag.tasks} == {"_PythonDecoratedOperator"}


@pytest.fixture(scope="module")
def dag_module():
    import importlib.util

    from airflow_helpers import DAGS

    spec = importlib.util.spec_from_file_location("customers_end_to_end_mod", DAGS / "customers_end_to_end.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(start=None, end=None, run_after=None):
    return SimpleNamespace(data_interval_start=start, data_interval_end=end, run_after=run_after, logical_date=None)


def test_interval_scheduled_run_is_its_data_interval(dag_module):
    h = datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert dag_module.run_interval({}, _run(h, h + timedelta(hours=1))) == Interval(h, h + timedelta(hours=1))


def test_interval_params_win(dag_module):
    h = datetime(2026, 3, 1, 5, tzinfo=UTC)
    got = dag_module.run_interval(
        {"since": "2026-02-01T00:00:00+00:00", "until": "2026-02-01T03:00:00+00:00"}, _run(h, h + timedelta(hours=1))
    )
    assert got == Interval(datetime(2026, 2, 1, 0, tzinfo=UTC), datetime(2026, 2, 1, 3, tzinfo=UTC))
    only_since = dag_module.run_interval({"since": "2026-02-01T07:30"}, _run())
    assert only_since == Interval(datetime(2026, 2, 1, 7, tzinfo=UTC), datetime(2026, 2, 1, 8, tzinfo=UTC))
    only_until = dag_module.run_interval({"until": "2026-02-01T08:00"}, _run())
    assert only_until == only_since
    with pytest.raises(ValueError):
        dag_module.run_interval({"since": "2026-02-01T08:00", "until": "2026-02-01T07:00"}, _run())


def test_interval_manual_run_without_interval_is_previous_hour(dag_module):
    got = dag_module.run_interval(
        {"since": None, "until": None}, _run(run_after=datetime(2026, 3, 1, 5, 42, tzinfo=UTC))
    )
    assert got == Interval(datetime(2026, 3, 1, 4, tzinfo=UTC), datetime(2026, 3, 1, 5, tzinfo=UTC))


def test_both_modes_retry_exactly_the_errors_a_retry_can_fix(dag_module):
    """Issue 27: a StageError (a stage refusing its input or the lake's state: "a retry cannot
    change it") failed an inline task at once, but exited 1 like an unexpected error, which the
    Kubernetes pods retried. The exit code now carries the decision, and both modes read it."""
    from airflow.sdk.exceptions import AirflowFailException

    from mdp.core import errors

    classes = [
        errors.MdpError,
        errors.StageError,
        errors.ConfigError,
        errors.GateFailed,
        errors.ConservationError,
        errors.Unavailable,
        errors.Busy,
    ]
    for cls in classes:  # the pods see only the exit code: it must say what `retryable` says
        assert (errors.exit_code_for(cls("x")) in dag_module.NO_RETRY_EXIT_CODES) == (not cls.retryable), cls.__name__
    assert errors.exit_code_for(RuntimeError("unexpected")) not in dag_module.NO_RETRY_EXIT_CODES
    for cls in classes:  # the inline mode decides as a pod with that exit code would
        failure = dag_module.task_failure("validate_silver", cls("why"))
        assert isinstance(failure, AirflowFailException) == (not cls.retryable), cls.__name__
        assert "why" in str(failure)
