"""The champion: which version `<model>@champion` names, its files on this machine, and its scores.

Scoring works on a version, not on the alias: the alias is resolved once, then that version is
downloaded and recorded on every score row, so a champion that moves during a run cannot mix two
models in one table.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mdp.core.contract import Contract
from mdp.core.errors import StageError
from training.registry import CHAMPION, _mlflow, champion_version, mlflow_errors

SCORE = "score"  # P(label is the contract's positive value), from the champion's predict_proba
META = ("model_name", "model_version", "gold_snapshot")  # on every score row: what scored it, from what


@dataclass(frozen=True)
class ChampionRef:
    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def no_champion_reason(name: str) -> str:
    return f"no champion: registered model {name!r} has no `{CHAMPION}` alias yet (train_model promotes one)"


def resolve(settings) -> ChampionRef | None:
    """The version the alias names now; None when there is none. An unreachable MLflow is Unavailable."""
    from mlflow.tracking import MlflowClient

    _mlflow(settings)
    uri, name = settings.mlflow_uri, settings.model_name
    with mlflow_errors(uri, f"resolving {name}@{CHAMPION}"):
        version = champion_version(MlflowClient(uri, uri), name)
    return ChampionRef(name, version) if version else None


def require(settings) -> ChampionRef:
    ref = resolve(settings)
    if ref is None:
        raise StageError(no_champion_reason(settings.model_name))
    return ref


def download(settings, ref: ChampionRef) -> str:
    """The version's files in a new local folder (its name is unique: Spark ships it by that name)."""
    mlflow = _mlflow(settings)
    with mlflow_errors(settings.mlflow_uri, f"downloading {ref.uri}"):
        return mlflow.artifacts.download_artifacts(
            artifact_uri=ref.uri, dst_path=tempfile.mkdtemp(prefix="mdp-champion-")
        )


def check_inputs(path: str, ref: ChampionRef, contract: Contract, available: list[str]) -> None:
    """The champion must read features the current Gold has (a contract change can break that)."""
    from mlflow.models import Model

    from training.model import feature_names

    schema = Model.load(path).get_input_schema()
    needed = schema.input_names() if schema else feature_names(contract)
    missing = [c for c in needed if c not in available]
    if missing:
        raise StageError(
            f"{ref.name} v{ref.version} ({CHAMPION}) needs {missing}, which the current Gold lacks: "
            "train_model on the current Gold promotes a champion that can score it"
        )


_loaded: dict[str, object] = {}


def load(path: str):
    """The pyfunc model at `path`, loaded once per (Python worker) process."""
    if path not in _loaded:
        import mlflow.pyfunc

        _loaded[path] = mlflow.pyfunc.load_model(path)
    return _loaded[path]


def score_frame(model, rows: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Scores of Gold-shaped rows: the model's input as training prepared it, then P(positive)."""
    from training.model import model_input, positive_scores

    if rows.empty:
        return np.empty(0, dtype="float64")
    return positive_scores(model.predict(model_input(rows, contract)))
