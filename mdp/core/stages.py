"""The stage registry: the ordered stages of the pipeline, defined once.

The CLI, the Airflow DAG (inline and Kubernetes modes), the SparkApplication builder and the
images all read this list. Adding a stage is one entry here plus its module with `run(ctx)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Stage:
    name: str
    kind: Literal["spark", "python"]  # spark: SparkApplication in kind; python: a plain pod
    module: str  # exposes run(ctx: RunContext) -> dict of metrics
    summary: str
    outputs: tuple[str, ...] = ()  # lake URIs-as-names, used for Airflow Assets

    def entrypoint(self):
        return importlib.import_module(self.module).run

    @property
    def image_role(self) -> str:
        return "spark" if self.kind == "spark" else "jobs"


STAGES: tuple[Stage, ...] = (
    Stage("land_bronze", "python", "ingestion.land", "source -> Bronze (raw, partitioned by ingest hour)"),
    Stage("bronze_to_silver", "spark", "spark_apps.bronze_to_silver",
          "parse, cast, quarantine, dedupe, merge latest state (staged)"),
    Stage("validate_silver", "python", "validation.gate", "GX gate on the staged Silver; publish on success",
          outputs=("silver/customers",)),
    Stage("silver_to_gold", "spark", "spark_apps.silver_to_gold", "one feature row per customer, versioned snapshot",
          outputs=("gold/customer_features",)),
    Stage("train_model", "python", "training.train", "train, log to MLflow, register, move `champion`",
          outputs=("mlflow/customers-churn",)),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def get_stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
