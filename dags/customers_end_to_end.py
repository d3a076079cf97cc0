"""customers_end_to_end: the pipeline's stages as Airflow tasks, built from the stage registry.

One task per entry of mdp.core.stages.STAGES, in registry order (land_bronze is left out when a
continuous lander runs, MDP_CONTINUOUS_LANDING). The profile's `runner` picks how a task runs:

- inline (embedded, local, compose): a TaskFlow task calls mdp.shell.runner.run_stage in the worker;
- kubernetes (kind): Spark stages submit a SparkApplication, the others run `mdp stage NAME` in a
  KubernetesPodOperator pod; both specs come from mdp.shell.k8s.

Every run, scheduled or triggered, merges every Bronze object that Silver has not seen yet, so a
paused DAG, a failed landing or late records are caught up by the next run. Params since/until
make it a backfill that also reprocesses those ingest hours. The generator source (embedded) lands
the run's data interval, or the hour before a manual trigger. The stages of one run share its run
id: validate_silver publishes exactly the version bronze_to_silver staged for this run.
Retries: one rule in both modes, by the `mdp stage` exit code: the codes in NO_RETRY_EXIT_CODES
(mdp/core/errors.py: bad configuration, a failed gate, a refused input) fail the task for good; an
unreachable dependency and unexpected errors are retried.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mdp.core import errors
from mdp.core.lake import Interval, hour_floor
from mdp.core.settings import Settings, get_settings
from mdp.core.stages import STAGES, Stage

DAG_ID = "customers_end_to_end"
log = logging.getLogger(__name__)

# Retries and timeouts (asserted by tests/dags/test_airflow_dag_integrity.py).
RETRIES = 2
RETRY_DELAY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(minutes=10)
EXECUTION_TIMEOUT = {"python": timedelta(minutes=30), "spark": timedelta(minutes=45)}
DAGRUN_TIMEOUT = timedelta(hours=3)
# Both modes decide by these codes (pods by the exit code, inline by the error's), so they retry the same errors.
NO_RETRY_EXIT_CODES = errors.NO_RETRY_EXIT_CODES


def task_failure(task_id: str, exc: BaseException) -> AirflowException:
    """What an inline task raises for a stage's error: fail now (AirflowFailException) when its exit
    code is one a retry cannot fix, else an AirflowException that Airflow retries with backoff."""
    code = errors.exit_code_for(exc)
    if code in NO_RETRY_EXIT_CODES:
        # A failed gate names the failed expectations and the Data Docs; retrying cannot pass.
        return AirflowFailException(f"{task_id}: exit code {code}, not retrying.\n{exc}")
    return AirflowException(f"{task_id}: exit code {code}: {exc}")


def is_backfill(params: dict | None) -> bool:
    return bool((params or {}).get("since") or (params or {}).get("until"))


def run_interval(params: dict | None, dag_run: Any) -> Interval:
    """The ingest hours of a run: the backfill params, else the data interval (what the generator lands)."""
    params = params or {}
    since, until = params.get("since"), params.get("until")
    if since or until:
        if until and not since:
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


def inlets_for(stage: Stage, settings: Settings) -> list[Asset]:
    """What a stage reads: the outputs of the closest upstream stage that declares any."""
    before = STAGES[: STAGES.index(stage)]
    for s in reversed(before):
        if s.outputs:
            return assets_for(s.output_names(settings))
    return []


def common_args(stage: Stage, settings: Settings) -> dict[str, Any]:
    return {
        "task_id": stage.name,
        "doc_md": stage.summary,
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": EXECUTION_TIMEOUT[stage.kind],
        "outlets": assets_for(stage.output_names(settings)),
        "inlets": inlets_for(stage, settings),
    }


def inline_task(stage: Stage, settings: Settings) -> Any:  # the task's XComArg
    """A TaskFlow task that runs the stage in this worker process."""

    @task(**common_args(stage, settings))
    def run_inline() -> dict:
        from mdp.core.context import RunContext
        from mdp.core.errors import ConfigError, MdpError
        from mdp.shell.runner import run_stage

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
        ctx = RunContext(
            settings=settings, interval=interval, run_id=context["run_id"], backfill=is_backfill(context["params"])
        )
        try:
            result = run_stage(stage, ctx)
        except MdpError as exc:
            log.error("%s failed (exit code %s): %s", stage.name, exc.exit_code, exc)
            raise task_failure(stage.name, exc) from exc
        log.info("%s done in %.1fs: %s", stage.name, result.seconds, result.figures)
        return json.loads(json.dumps(result.figures, default=str))

    return run_inline()


def kubernetes_task(stage: Stage, settings: Settings) -> Any:  # the operator
    """A SparkApplication (spark stages) or a pod running `mdp stage` (python stages)."""
    from mdp.shell import k8s

    # Empty unless the run is a backfill: then bronze_to_silver also reprocesses those hours.
    since = "{{ params.since or '' }}"
    until = "{{ params.until or '' }}"
    if stage.kind == "spark":
        from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
            SparkKubernetesOperator,
        )

        return SparkKubernetesOperator(
            **common_args(stage, settings), **k8s.spark_operator_kwargs(settings, stage, since, until)
        )
    return stage_pod_operator(
        **common_args(stage, settings),
        startup_timeout_seconds=300,
        **k8s.pod_operator_kwargs(settings, stage, since, until),
    )


def stage_pod_operator(**kwargs: Any) -> Any:
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
                    statuses = (
                        remote_pod.status.container_statuses if remote_pod and remote_pod.status else None
                    ) or []
                    base = next((s for s in statuses if s.name == self.base_container_name), None)
                    code = base.state.terminated.exit_code if base and base.state and base.state.terminated else None
                    if code in NO_RETRY_EXIT_CODES:
                        raise AirflowFailException(f"{self.task_id}: exit code {code}, not retrying.\n{exc}") from exc
                    raise

        _StagePodOperator.__name__ = _StagePodOperator.__qualname__ = "StagePodOperator"
        StagePodOperator = _StagePodOperator
    return StagePodOperator(**kwargs)


StagePodOperator: type[Any] | None = None  # the class, once stage_pod_operator has defined it


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
        "since": Param(
            None,
            type=["null", "string"],
            title="since",
            description="First ingest hour, ISO 8601 (e.g. 2026-01-01T00:00:00+00:00). Empty: the run's data interval.",
        ),
        "until": Param(
            None,
            type=["null", "string"],
            title="until",
            description="End ingest hour, exclusive, ISO 8601. Empty: since + 1 hour.",
        ),
    },
)
def customers_end_to_end() -> None:
    settings = get_settings()  # parse time: the runner, the contract's names and the kubernetes specs
    previous = None
    for stage in (s for s in STAGES if s.enabled(settings)):
        current = kubernetes_task(stage, settings) if settings.runner == "kubernetes" else inline_task(stage, settings)
        if previous is not None:
            previous >> current
        previous = current


customers_end_to_end()
