"""Runs stages in process, in registry order, and builds the run report (rows per layer, times).

Used by the CLI and by the Airflow DAG's inline mode; the Kubernetes mode runs `mdp stage NAME`
in a pod, which lands here too.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mdp.core.context import RunContext
from mdp.core.settings import Settings
from mdp.core.stages import STAGES, Stage


@dataclass
class StageResult:
    stage: str
    seconds: float
    figures: dict


@dataclass
class RunReport:
    results: list[StageResult] = field(default_factory=list)

    def figures(self, stage: str) -> dict:
        return next((r.figures for r in self.results if r.stage == stage), {})

    def conservation(self) -> list[str]:
        """The row-conservation checks bronze_to_silver passed (a ConservationError stops the run when
        one fails), each counted from independent sources."""
        return list(self.figures("bronze_to_silver").get("conservation", {}).values())

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.results)


class Warmup:
    """In a run of several stages, the Spark session (6-8 s here) starts while the first, Python
    stage (land_bronze) runs, instead of after it. get_spark waits for a session being started; a
    warm-up that fails is ignored, and the Spark stage meets the error itself. Measured and dropped:
    importing the later stages' libraries while Spark works (2 cores: it slowed Spark as much as it
    saved, bench/README.md)."""

    GRACE_S = 1.0

    def __init__(self, ctx: RunContext, stages: list[Stage]) -> None:
        self.ctx, self.stages = ctx, stages
        self._quiet = threading.Event()
        if len(stages) > 1 and stages[0].kind != "spark" and any(s.kind == "spark" for s in stages):
            importlib.import_module("spark_apps.session")  # pyspark imported here, not beside land_bronze's imports
            threading.Thread(target=self._spark, name="warm-spark", daemon=True).start()

    def _spark(self) -> None:
        # A first stage that finds nothing new ends within a second; then no Spark stage may need a
        # session at all (a quiet hour), and a JVM starting beside it would only take CPU.
        if self._quiet.wait(self.GRACE_S):
            return
        try:
            from spark_apps.session import get_spark

            get_spark(self.ctx.settings)
        except Exception:
            pass

    def after(self, result: StageResult) -> None:
        if result.stage == self.stages[0].name and result.figures.get("nothing_new"):
            self._quiet.set()


def run_stage(stage: Stage, ctx: RunContext) -> StageResult:
    t0 = time.perf_counter()
    figures = stage.entrypoint()(ctx) or {}
    return StageResult(stage.name, time.perf_counter() - t0, figures)


def preflight(settings: Settings, stages: Iterable[Stage]) -> None:
    """Fail fast, before any work (and before any Spark session): the contract loads, S3 has its keys,
    its buckets and answers, and the endpoints these stages use answer (one TCP connect each, bounded
    by connect_timeout_s). A bad setting is a ConfigError, an endpoint that does not answer is
    Unavailable (retryable); both name the setting."""
    from mdp.core.settings import check_reachable

    names = {s.name for s in stages}
    t = settings.connect_timeout_s
    _ = settings.data_contract  # a bad contract fails here, naming its key
    if settings.lake_is_s3 and any(s.kind == "spark" for s in stages):
        from spark_apps.session import require_s3a

        # A local fact, checked before any endpoint: not a JVM stack trace in the first Spark stage.
        require_s3a(settings)
    if settings.lake_is_s3:
        from mdp.core.storage import check_s3, s3_client

        s3_client(settings)  # endpoint and keys are set (else a ConfigError naming the missing one)
        assert settings.s3_endpoint is not None  # for the type checker: s3_client checked it
        check_reachable("s3_endpoint", settings.s3_endpoint, t)
        check_s3(settings)  # the keys are accepted and the layer buckets exist
    if names & {"train_model", "score_customers"}:
        check_reachable("mlflow_tracking_uri", settings.mlflow_uri, t)
    if "land_bronze" in names and settings.source == "kafka" and settings.kafka_bootstrap:
        for server in settings.kafka_bootstrap.split(","):
            check_reachable("kafka_bootstrap", server.strip(), t)


def run_pipeline(
    ctx: RunContext,
    stages: Iterable[Stage] = STAGES,
    on_start: Callable[[Stage], None] | None = None,
    on_done: Callable[[StageResult], None] | None = None,
) -> RunReport:
    """Stops at the first failing stage (the exception propagates); the report keeps what ran."""
    report = RunReport()
    ctx.report = report  # type: ignore[attr-defined]  # lets a caller show partial results on failure
    stages = list(stages)
    preflight(ctx.settings, stages)
    warm = Warmup(ctx, stages)
    for stage in stages:
        if on_start:
            on_start(stage)
        result = run_stage(stage, ctx)
        warm.after(result)
        report.results.append(result)
        if on_done:
            on_done(result)
    return report
