"""The stage registry: the ordered stages of the pipeline, defined once.

The CLI, the Airflow DAG (inline and Kubernetes modes), the SparkApplication builder and the
images all read this list. Adding a stage is one entry here plus its module with `run(ctx)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mdp.core.context import RunContext
    from mdp.core.settings import Settings

# What a stage's run returns: its figures (rows in and out, versions made, `nothing_new`), the run
# report's line for it. Each stage has its own keys.
Figures = dict[str, Any]
StageRun = Callable[["RunContext"], Figures]


@dataclass(frozen=True)
class Stage:
    name: str
    kind: Literal["spark", "python"]  # spark: SparkApplication in kind; python: a plain pod
    module: str  # exposes run(ctx: RunContext) -> Figures
    summary: str
    outputs: tuple[
        str, ...
    ] = ()  # names of what it publishes ({entity}, {model}, {scores} from the contract): Airflow Assets
    off_when: str | None = None  # a boolean setting that turns the stage off in a deployment

    def output_names(self, settings: Settings) -> tuple[str, ...]:
        contract = settings.data_contract
        return tuple(
            o.format(entity=contract.entity, model=settings.model_name, scores=contract.scores_name)
            for o in self.outputs
        )

    def enabled(self, settings: Settings) -> bool:
        return not (self.off_when and getattr(settings, self.off_when))

    def entrypoint(self) -> StageRun:
        run: StageRun = importlib.import_module(self.module).run
        return run

    @property
    def image_role(self) -> str:
        return "spark" if self.kind == "spark" else "jobs"


STAGES: tuple[Stage, ...] = (
    # Off when `mdp land --follow` lands Kafka continuously: the run then starts at Bronze.
    Stage(
        "land_bronze",
        "python",
        "ingestion.land",
        "source -> Bronze (raw, partitioned by ingest hour)",
        off_when="continuous_landing",
    ),
    Stage(
        "bronze_to_silver",
        "spark",
        "spark_apps.bronze_to_silver",
        "new Bronze objects: parse, quarantine, drop copies, merge latest state (staged)",
    ),
    Stage(
        "validate_silver",
        "python",
        "validation.gate",
        "GX gate on the staged Silver; publish on success",
        outputs=("silver/{entity}",),
    ),
    Stage(
        "silver_to_gold",
        "spark",
        "spark_apps.silver_to_gold",
        "one feature row per entity, versioned snapshot",
        outputs=("gold/{entity}/features",),
    ),
    Stage(
        "train_model",
        "python",
        "training.train",
        "train, log to MLflow, register, move `champion`",
        outputs=("mlflow/{model}",),
    ),
    Stage(
        "score_customers",
        "spark",
        "scoring.score",
        "the champion scores every Gold entity; versioned scores, mirrored to Postgres",
        outputs=("gold/{entity}/{scores}",),
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def get_stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
