"""train_model: fit on the current Gold snapshot, log to MLflow, register, move `champion`.

`champion` moves to the new version only when its ROC AUC is at least the current champion's.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import version as package_version

import matplotlib.pyplot as plt

from mdp.core.context import RunContext, StageError
from mdp.core.contract import load_contract
from mdp.core.lake import gold_dataset, read_parquet
from mdp.core.settings import check_reachable
from training.model import FEATURES, build_pipeline, evaluate, plots, split

log = logging.getLogger(__name__)
CHAMPION = "champion"
SERVING_PACKAGES = ("mlflow", "scikit-learn", "skops", "pandas", "numpy")


def _mlflow(settings):
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(30, settings.connect_timeout_s))))
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return mlflow


def ensure_experiment(mlflow, settings) -> str:
    exp = mlflow.get_experiment_by_name(settings.experiment)
    if exp:
        return exp.experiment_id
    # A local store keeps artifacts in the lake's `mlflow` layer; a server decides for itself.
    location = settings.layer_uri("mlflow") if settings.mlflow_uri.startswith("sqlite") else None
    return mlflow.create_experiment(settings.experiment, artifact_location=location)


def champion_auc(client, name: str) -> tuple[str | None, float | None]:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    return mv.version, client.get_run(mv.run_id).data.metrics.get("roc_auc")


def run(ctx: RunContext) -> dict:
    settings, contract = ctx.settings, load_contract()
    # An MLflow server that is down fails here, in seconds, naming the setting (not after training).
    check_reachable("mlflow_tracking_uri", settings.mlflow_uri, settings.connect_timeout_s)
    current = gold_dataset(settings, ctx.store).current()
    if not current:
        raise StageError("no Gold snapshot: run silver_to_gold first")
    snapshot = current["version"]
    gold = read_parquet(settings, gold_dataset(settings, ctx.store).table_uri("features", snapshot)).to_pandas()
    if gold[contract.label.column].nunique() < 2:
        raise StageError(f"Gold snapshot {snapshot} has a single class in {contract.label.column!r}: nothing to learn")
    X_train, X_test, y_train, y_test = split(gold, contract.label.column, settings.seed)
    model = build_pipeline(settings.seed).fit(X_train, y_train)
    metrics = evaluate(model, X_test, y_test)

    mlflow = _mlflow(settings)
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    exp_id = ensure_experiment(mlflow, settings)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{snapshot}") as active:
        mlflow.log_params(
            {
                "gold_snapshot": snapshot,
                "silver_version": current.get("silver_version"),
                "rows_total": len(gold),
                "rows_train": len(X_train),
                "rows_test": len(X_test),
                "positive_rate": round(float(gold[contract.label.column].mean()), 4),
                "features": ",".join(FEATURES),
                "model": "HistGradientBoostingClassifier",
                **{f"hp_{k}": v for k, v in model.named_steps["model"].get_params().items() if k in ("max_iter", "learning_rate", "max_leaf_nodes")},
                "seed": settings.seed,
                "interval": str(ctx.interval),
            }
        )
        mlflow.log_metrics(metrics)
        for name, fig in plots(model, X_test, y_test, settings.seed).items():
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_test.head(50), model.predict_proba(X_test.head(50))[:, 1]),
            input_example=X_test.head(5),
            registered_model_name=settings.model_name,
            # Our own fitted trees; skops asks us to vouch for the type explicitly.
            skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
            # Stated, not inferred: inference re-imports the model in a subprocess (about 8 s a run).
            pip_requirements=[f"{p}=={package_version(p)}" for p in SERVING_PACKAGES],
        )
        run_id = active.info.run_id

    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    version = str(info.registered_model_version)
    prev_version, prev_auc = champion_auc(client, settings.model_name)
    promoted = prev_auc is None or metrics["roc_auc"] >= prev_auc
    if promoted:
        client.set_registered_model_alias(settings.model_name, CHAMPION, version)
    log.info("model v%s roc_auc=%.4f champion=%s", version, metrics["roc_auc"], version if promoted else prev_version)
    return {
        "gold_snapshot": snapshot,
        "run_id": run_id,
        "model_version": version,
        "champion": version if promoted else prev_version,
        "promoted": promoted,
        **{k: round(v, 4) for k, v in metrics.items()},
    }
