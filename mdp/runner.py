"""Runs stages in process, in registry order, and builds the run report (rows per layer, times).

Used by the CLI and by the Airflow DAG's inline mode; the Kubernetes mode runs `mdp stage NAME`
in a pod, which lands here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mdp.context import RunContext
from mdp.stages import STAGES, Stage


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

    def conservation(self) -> tuple[bool, str] | None:
        """bronze_in == accepted + quarantined + duplicates, for the Bronze rows this run read."""
        f = self.figures("bronze_to_silver")
        if not f or not f.get("bronze_in"):
            return None
        rhs = f["accepted"] + f["quarantined"] + f["duplicates"]
        text = f"bronze_in {f['bronze_in']} = accepted {f['accepted']} + quarantined {f['quarantined']} + duplicates {f['duplicates']}"
        return f["bronze_in"] == rhs, text if f["bronze_in"] == rhs else text.replace(" = ", f" != ({rhs}) ")

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.results)


def run_stage(stage: Stage, ctx: RunContext) -> StageResult:
    t0 = time.perf_counter()
    figures = stage.entrypoint()(ctx) or {}
    return StageResult(stage.name, time.perf_counter() - t0, figures)


def run_pipeline(
    ctx: RunContext,
    stages: Iterable[Stage] = STAGES,
    on_start: Callable[[Stage], None] | None = None,
    on_done: Callable[[StageResult], None] | None = None,
) -> RunReport:
    """Stops at the first failing stage (the exception propagates); the report keeps what ran."""
    report = RunReport()
    ctx.report = report  # type: ignore[attr-defined]  # lets a caller show partial results on failure
    for stage in stages:
        if on_start:
            on_start(stage)
        result = run_stage(stage, ctx)
        report.results.append(result)
        if on_done:
            on_done(result)
    return report
