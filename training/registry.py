"""The MLflow registry, as the stages use it: the client set up with bounded retries, errors that
mean "not reachable" (Unavailable, exit 5), the champion alias, and which Gold snapshot a version
was trained on. Light on purpose: a quiet hour asks these questions without importing
scikit-learn or matplotlib."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING

from mdp.core.errors import Unavailable
from mdp.core.settings import Settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"


# ---- MLflow access: errors that mean "not reachable" become Unavailable ----------------------------
def _mlflow(settings: Settings) -> ModuleType:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(30, settings.connect_timeout_s))))
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return mlflow


def is_unreachable(exc: BaseException) -> bool:
    """True when the error (or one it came from) is a connection failure, a timeout or a 503."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        if getattr(seen, "error_code", None) == "TEMPORARILY_UNAVAILABLE":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def mlflow_errors(uri: str, what: str) -> Iterator[None]:
    try:
        yield
    except Unavailable:
        raise
    except Exception as exc:
        if is_unreachable(exc):
            raise Unavailable(f"MLflow at {uri} did not answer while {what}: {str(exc)[:300]}") from exc
        raise


def ensure_experiment(mlflow: ModuleType, settings: Settings) -> str:
    exp = mlflow.get_experiment_by_name(settings.experiment)
    if exp:
        return exp.experiment_id
    # A local store keeps artifacts in the lake's `mlflow` layer; a server decides for itself.
    location = settings.layer_uri("mlflow") if settings.mlflow_uri.startswith("sqlite") else None
    return mlflow.create_experiment(settings.experiment, artifact_location=location)


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version the alias names; None when the model or the alias does not exist. Any other
    MLflow error propagates (an unreachable MLflow is not "no champion")."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (registered.aliases or {}).get(CHAMPION)
    return str(version) if version is not None else None


def version_trained_on(client: MlflowClient, name: str, gold_snapshot: int | str) -> ModelVersion | None:
    """The newest version of `name` trained on this Gold snapshot (its `gold_snapshot` tag), or None."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}' and tag.gold_snapshot = '{gold_snapshot}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    done = [v for v in found if v.tags.get("champion_decision")]  # tagged last: registration finished
    return max(done, key=lambda v: int(v.version), default=None)
