"""customers_end_to_end: the pipeline's stages as Airflow tasks, built from the stage registry.

One task per entry of mdp.core.stages.STAGES, in registry order (land_bronze -> bronze_to_silver ->
validate_silver -> silver_to_gold -> train_model). The profile's `runner` picks how a task runs:

- inline (embedded, local, compose): a TaskFlow task calls mdp.shell.runner.run_stage in the worker;
- kubernetes (kind): Spark stages submit a SparkApplication, the others run `mdp stage NAME` in a
  KubernetesPodOperator pod; both specs come from mdp.shell.k8s.

Each run processes one interval of ingest hours: params since/until when given (manual runs),
else the run's data interval (one hour on the @hourly schedule), else the hour before the
run's trigger time. Every stage is idempotent for an interval, so reruns and backfills are safe.
A failed quality gate (or any StageError / configuration error) fails its task without retries.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mdp.core.lake import Interval, hour_floor
from mdp.core.settings import get_settings
from mdp.core.stages import STAGES, Stage

DAG_ID = "customers_end_to_end"
log = logging.getLogger(__name__)

# Retries and timeouts (asserted by tests/airflow/test_dag_integrity.py).
RETRIES = 2
RETRY_DELAY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(minutes=10)
EXECUTION_TIMEOUT = {"python": timedelta(minutes=30), "spark": timedelta(minutes=45)}
DAGRUN_TIMEOUT = timedelta(hours=3)
# `mdp stage` exit codes that a retry cannot fix: 2 bad configuration, 3 the GX gate failed.
NO_RETRY_EXIT_CODES = (2, 3)


def run_interval(params: dict | None, dag_run) -> Interval:
    """The ingest hours a run processes (used by inline tasks and by the pod/Spark templates)."""
    params = params or {}
    since, until = params.get("since"), params.get("until")
    if since or until:
        if not since:
            since = (hour_floor(datetime.fromisoformat(until)) - timedelta(hours=1)).isoformat()
        return Interval.parse(since, until)
    start = getattr(dag_run, "data_interval_start", None)
    end = getattr(dag_run, "data_interval_end", None)
    if start and end and end > start:
        first = hour_floor(start)
        last = hour_floor(end)
        return Interval(first, last if last > first else first + timedelta(hours=1))
    anchor = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None) or datetime.now(UTC)
    return Interval.hour_of(hour_floor(anchor) - timedelta(hours=1))


def assets_for(outputs: tuple[str, ...]) -> list[Asset]:
    # Stable identities (mdp://<layer>/<name>) whatever the profile's lake or MLflow location.
    return [Asset(name=o, uri=f"mdp://{o}", group="mdp") for o in outputs]


def inlets_for(stage: Stage) -> list[Asset]:
    """What a stage reads: the outputs of the closest upstream stage that declares any."""
    before = STAGES[: STAGES.index(stage)]
    for s in reversed(before):
        if s.outputs:
            return assets_for(s.outputs)
    return []


def common_args(stage: Stage) -> dict:
    return {
        "task_id": stage.name,
        "doc_md": stage.summary,
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": EXECUTION_TIMEOUT[stage.kind],
        "outlets": assets_for(stage.outputs),
        "inlets": inlets_for(stage),
    }


def inline_task(stage: Stage):
    """A TaskFlow task that runs the stage in this worker process."""

    @task(**common_args(stage))
    def run_inline() -> dict:
        from mdp.core.context import RunContext, StageError
        from mdp.shell.runner import run_stage
        from mdp.core.settings import ConfigError

        context = get_current_context()
        try:
            interval = run_interval(context["params"], context["dag_run"])
            settings = get_settings()
        except (ValueError, ConfigError) as exc:
            raise AirflowFailException(f"{stage.name}: {exc}") from exc
        from airflow.sdk.log import mask_secret

        for value in settings.secret_values():  # Airflow's masker then hides them in every task log line
            mask_secret(value)
        log.info("%s: interval %s, profile %s, lake %s", stage.name, interval, settings.profile, settings.lake_base)
        try:
            result = run_stage(stage, RunContext(settings=settings, interval=interval, run_id=context["run_id"]))
        except (StageError, ConfigError) as exc:
            # GateFailed is a StageError: its message names the failed expectations and the Data
            # Docs. Retrying the same data cannot pass, so fail now, loudly.
            log.error("%s failed: %s", stage.name, exc)
            raise AirflowFailException(f"{stage.name} failed: {exc}") from exc
        log.info("%s done in %.1fs: %s", stage.name, result.seconds, result.figures)
        return json.loads(json.dumps(result.figures, default=str))

    return run_inline()


def kubernetes_task(stage: Stage, settings):
    """A SparkApplication (spark stages) or a pod running `mdp stage` (python stages)."""
    from mdp.shell import k8s

    since = "{{ mdp_interval(params, dag_run).start.isoformat() }}"
    until = "{{ mdp_interval(params, dag_run).end.isoformat() }}"
    if stage.kind == "spark":
        from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
            SparkKubernetesOperator,
        )

        return SparkKubernetesOperator(**common_args(stage), **k8s.spark_operator_kwargs(settings, stage, since, until))
    return stage_pod_operator(
        **common_args(stage), startup_timeout_seconds=300, **k8s.pod_operator_kwargs(settings, stage, since, until)
    )


def stage_pod_operator(**kwargs):
    """A KubernetesPodOperator that fails for good on `mdp stage` exit codes a retry cannot fix.

    Defined on first use: the provider import is slow, and inline mode never needs it.
    """
    global StagePodOperator
    if StagePodOperator is None:
        from airflow.providers.cncf.kubernetes.operators.pod import (
            KubernetesPodOperator,
        )

        class _StagePodOperator(KubernetesPodOperator):
            def cleanup(self, pod, remote_pod, xcom_result=None, context=None):
                try:
                    return super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)
                except AirflowFailException:
                    raise
                except AirflowException as exc:
                    statuses = (remote_pod.status.container_statuses if remote_pod and remote_pod.status else None) or []
                    base = next((s for s in statuses if s.name == self.base_container_name), None)
                    code = base.state.terminated.exit_code if base and base.state and base.state.terminated else None
                    if code in NO_RETRY_EXIT_CODES:
                        raise AirflowFailException(f"{self.task_id}: exit code {code}, not retrying.\n{exc}") from exc
                    raise

        _StagePodOperator.__name__ = _StagePodOperator.__qualname__ = "StagePodOperator"
        StagePodOperator = _StagePodOperator
    return StagePodOperator(**kwargs)


StagePodOperator = None  # the class, once stage_pod_operator has defined it


@dag(
    dag_id=DAG_ID,
    description="Bronze -> Silver -> GX gate -> Gold -> model, one interval of ingest hours per run",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=DAGRUN_TIMEOUT,
    tags=["mdp", "customers"],
    doc_md=__doc__,
    user_defined_macros={"mdp_interval": run_interval},
    params={
        "since": Param(None, type=["null", "string"], title="since",
                       description="First ingest hour, ISO 8601 (e.g. 2026-01-01T00:00:00+00:00). "
                                   "Empty: the run's data interval."),
        "until": Param(None, type=["null", "string"], title="until",
                       description="End ingest hour, exclusive, ISO 8601. Empty: since + 1 hour."),
    },
)
def customers_end_to_end():
    settings = get_settings()  # parse time: only the runner and the kubernetes specs are read here
    previous = None
    for stage in STAGES:
        current = kubernetes_task(stage, settings) if settings.runner == "kubernetes" else inline_task(stage)
        if previous is not None:
            previous >> current
        previous = current


customers_end_to_end()
