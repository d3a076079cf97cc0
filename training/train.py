"""train_model: fit on the current Gold snapshot, log to MLflow, register, and decide the champion.

1. Read the current Gold snapshot; keep the rows with a label. The rows whose key is in the holdout
   (training/model.py `in_holdout`: a salted hash of the key, about a quarter of the keys) are the
   test rows; the others train. A key's place never changes as Gold grows, so no version, of any
   Gold snapshot, trains on a held-out key. A Gold with a single class fails the stage (StageError:
   nothing to learn). A class with fewer than MIN_CLASS_ROWS (3) training rows is tiny Gold: the
   stage trains nothing, registers nothing and says why, naming the counts (decision "not
   trained"); the run goes on, and a later Gold with more rows trains.
2. Compare the candidates (training/model.py: a regularised logistic regression and a gradient-
   boosted tree) by cross-validated ROC AUC on the training rows (CV_FOLDS folds, fewer when a class
   has fewer training rows); fit the winner on all of them.
3. Score the challenger and the current champion (loaded from `models:/<name>@champion`) on the
   same held-out rows: rows neither of them trained on. The `holdout` tag records the rule; the
   `comparison_rows` tag how many rows both were scored on.
4. Log params, metrics, the comparison table, plots and the model (its signature declared from the
   contract); register it; describe the registered model and the new version (tags and text); move
   the alias when the rule below says so, and pin the new champion's Gold snapshot and Silver
   version so that retention keeps them.

The champion rule, in order:
- fewer than `min_test_rows` held-out rows (MDP_MIN_TEST_ROWS, default 200), or a single class
  among them: no promotion, whatever the scores (the holdout grows with Gold);
- no champion yet: promote;
- the champion cannot score the current features (the contract changed, or it predates
  probability outputs): promote, with that reason recorded;
- the champion was not held out by the current rule (its `holdout` tag differs or is missing: it was
  trained before the holdout existed, under another primary key or salt): no rows are known to be
  unseen by it, so no comparison is fair; promote, with that reason recorded (once: the new
  champion carries the rule);
- otherwise promote only when the challenger's ROC AUC on the held-out rows is strictly higher than
  the champion's on the same rows. **A tie keeps the champion**: the alias moves for a measurable gain
  only, so a retrain on unchanged data does not churn it.

An MLflow that does not answer raises Unavailable (exit 5, retried); it never counts as "no champion".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version as package_version
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from mdp.core.context import RunContext, StageError
from mdp.core.contract import Contract
from mdp.core.errors import Unavailable
from mdp.core.manifests import VersionManifest
from mdp.core.settings import check_reachable
from mdp.core.tables import gold_dataset, silver_dataset
from training.registry import (
    CHAMPION,
    _mlflow,
    champion_version,
    ensure_experiment,
    is_unreachable,
    mlflow_errors,
    version_trained_on,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.models.model import ModelInfo
    from mlflow.tracking import MlflowClient
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)
SERVING_PACKAGES = ("mlflow", "scikit-learn", "skops", "pandas", "numpy")


# ---- the champion ---------------------------------------------------------------------------------
@dataclass
class Champion:
    version: str | None = None  # None: no champion yet
    roc_auc: float | None = None  # on the challenger's held-out rows
    cannot_score: str | None = None  # why it cannot score the current features
    not_held_out: str | None = None  # why no rows are known to be unseen by it


def score_champion(
    mlflow: ModuleType, client: MlflowClient, name: str, X_test: pd.DataFrame, y_test: pd.Series, rule: str
) -> Champion:
    """Load `models:/<name>@champion` and score it on the challenger's held-out rows, when it was
    held out by the same rule (so it never trained on them) and the rows can rank (two classes)."""
    from mlflow.exceptions import MlflowException

    from training.model import evaluate, positive_scores

    version = champion_version(client, name)
    if version is None:
        return Champion()
    expected = client.get_model_version(name, version)
    expected_run = expected.run_id
    if expected.tags.get("holdout") != rule:
        held = expected.tags.get("holdout")
        return Champion(
            version,
            not_held_out=f"it was held out by another rule ({held})"
            if held
            else "it records no holdout (trained before the holdout existed)",
        )
    if y_test.nunique() < 2:
        return Champion(version)  # decide() promotes nothing on these rows: no need to score
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    except Exception as exc:
        if is_unreachable(exc):
            raise
        # The registry names a champion whose files are gone (a new lake beside an old MLflow store).
        raise StageError(
            f"{name} v{version} ({CHAMPION}) cannot be loaded from {expected.source}: "
            f"{type(exc).__name__}: {str(exc)[:200]}. Keep the MLflow store and its artifacts together "
            f"(the lake's mlflow layer), or remove the alias: `{CHAMPION}` of {name}"
        ) from exc
    if expected_run and model.metadata.run_id and model.metadata.run_id != expected_run:
        raise Unavailable(f"the {CHAMPION} alias of {name} moved while it was evaluated (another training?): retry")
    schema = model.metadata.get_input_schema()
    needed = schema.input_names() if schema else list(X_test.columns)
    missing = [c for c in needed if c not in X_test.columns]
    if missing:
        return Champion(version, cannot_score=f"it needs {missing}, which the current features do not have")
    try:
        proba = positive_scores(model.predict(X_test[needed]))
    except (MlflowException, ValueError, TypeError, KeyError) as exc:
        # MLflow's schema errors quote the whole frame first; the cause is after the last "Error: ".
        cause = str(exc).rsplit("Error: ", 1)[-1].strip().splitlines()[0][:200]
        return Champion(version, cannot_score=f"{type(exc).__name__}: {cause}")
    return Champion(version, roc_auc=evaluate(proba, y_test)["roc_auc"])


@dataclass
class Decision:
    promote: bool
    outcome: str  # promoted | kept | not_promoted
    reason: str


def decide(
    challenger_auc: float, test_rows: int, test_classes: int, min_test_rows: int, champion: Champion
) -> Decision:
    """The champion rule (see the module docstring). Pure: the tests call it with every case."""
    if test_rows < min_test_rows:
        return Decision(False, "not_promoted", f"only {test_rows} held-out rows (min_test_rows is {min_test_rows})")
    if test_classes < 2:
        return Decision(False, "not_promoted", "the held-out rows hold a single class (or none): ROC AUC is undefined")
    if champion.version is None:
        return Decision(True, "promoted", "no champion yet")
    if champion.cannot_score:
        return Decision(
            True, "promoted", f"champion v{champion.version} cannot score the current features: {champion.cannot_score}"
        )
    if champion.not_held_out:
        return Decision(
            True,
            "promoted",
            f"champion v{champion.version} cannot be compared on rows it never trained on: {champion.not_held_out}",
        )
    # score_champion() scores a champion held out alike whenever the rows hold two classes.
    assert champion.roc_auc is not None, "decide() needs the champion's ROC AUC on these rows"
    same_rows = f"on the same {test_rows} held-out rows"
    if challenger_auc > champion.roc_auc:
        return Decision(
            True,
            "promoted",
            f"ROC AUC {challenger_auc:.4f} beats champion v{champion.version}'s {champion.roc_auc:.4f} {same_rows}",
        )
    return Decision(
        False,
        "kept",
        f"champion v{champion.version} keeps the alias: its ROC AUC {champion.roc_auc:.4f} {same_rows} "
        f"is at least the challenger's {challenger_auc:.4f} (a tie keeps the champion)",
    )


# ---- descriptions -----------------------------------------------------------------------------------
def model_description(contract: Contract, contract_ref: str) -> str:
    from training.model import holdout_rule

    roles = {r: [n for n, role, _ in contract.features() if role == r] for r in ("numeric", "categorical", "boolean")}
    label = contract.label
    return (
        f"Predicts the probability that a {contract.entity} row's `{label.column}` is {label.positive!r} "
        f"(class 1; any other value is class 0), one row per `{contract.primary_key}`, from the features of a Gold "
        f"snapshot. Contract: {contract.entity} version {contract.version} ({contract_ref}). "
        f"Features: numeric {roles['numeric']}; categorical {roles['categorical']}; boolean {roles['boolean']}. "
        "pyfunc predict returns [P(class 0), P(class 1)] per row; numeric inputs are doubles, so a gap (NaN) scores. "
        f"The `{CHAMPION}` alias names the version with the best ROC AUC on the held-out rows of the latest Gold: the "
        f"rows whose key is in the holdout ({holdout_rule(contract)}), which no version trains on, whatever its Gold "
        "snapshot; a tie keeps the champion. Each version's tags say why it is or is not the champion, and on how "
        "many rows it was compared (`comparison_rows`)."
    )


def version_description(winner: str, figures: dict, decision: Decision) -> str:
    return (
        f"{winner} trained on Gold snapshot {figures['gold_snapshot']} (Silver {figures['silver_version']}): "
        f"{figures['rows_train']} training rows, {figures['rows_test']} held-out rows. ROC AUC {figures['roc_auc']:.4f} "
        f"on the held-out rows. Champion decision: {decision.outcome} ({decision.reason})."
    )


def trusted_types(model: Pipeline) -> list[str]:
    """The skops types the fitted model holds beyond skops' defaults; each must be in SKOPS_TRUSTED."""
    import skops.io

    from training.model import SKOPS_TRUSTED

    found = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    unknown = [t for t in found if t not in SKOPS_TRUSTED]
    if unknown:
        raise StageError(
            f"the fitted model holds types not reviewed for loading: {unknown} (see training/model.py SKOPS_TRUSTED)"
        )
    return found


# ---- the stage --------------------------------------------------------------------------------------
def too_few(snapshot: int | str, contract: Contract, y_train: pd.Series, y_test: pd.Series) -> str | None:
    """Why the training rows are too few to train on, with the counts; None when each class has at
    least MIN_CLASS_ROWS of them. Below that a cross-validation fold trains on one row of the class,
    which the boosted tree's early stopping cannot split, and a model learns nothing from it anyway."""
    from training.model import MIN_CLASS_ROWS

    train, test = (y.value_counts().reindex([0, 1], fill_value=0) for y in (y_train, y_test))
    if train.min() >= MIN_CLASS_ROWS:
        return None
    label = contract.label
    return (
        f"Gold snapshot {snapshot} has too few rows of a class to train on: its training rows (labelled rows whose "
        f"key is outside the holdout) hold {train[0]} negative and {train[1]} positive ({label.column} = "
        f"{label.positive!r}), and the held-out rows {test[0]} and {test[1]}; a model needs at least {MIN_CLASS_ROWS} "
        "of each class among the training rows. train_model trains once Gold holds more rows of the rarer class"
    )


def read_gold(ctx: RunContext) -> tuple[VersionManifest, pd.DataFrame]:
    from training.model import feature_names

    settings, contract = ctx.settings, ctx.contract
    dataset = gold_dataset(settings, ctx.store)
    current = dataset.current()
    if not current:
        raise StageError("no Gold snapshot: run silver_to_gold first")
    gold = dataset.read("features", current.version).to_pandas()
    needed = [contract.primary_key, *feature_names(contract), contract.label.column]
    missing = [c for c in needed if c not in gold.columns]
    if missing:
        raise StageError(
            f"Gold snapshot {current.version} lacks {missing}, which the contract names: run silver_to_gold again"
        )
    return current, gold


def register(client: MlflowClient, name: str, info: ModelInfo, run_id: str, uri: str) -> str:
    """A new version of `name` from the logged model, through the client: the fluent
    `registered_model_name=` prints to stderr on every run."""
    from mlflow.exceptions import MlflowException

    with mlflow_errors(uri, "registering the model"):
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return str(client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id).version)


def already_trained(ctx: RunContext) -> dict | None:
    """The figures of the version already trained on the current Gold snapshot, or None. A quiet
    hour leaves Gold as it was: training again would register the same model as a new version."""
    from mlflow.tracking import MlflowClient

    settings = ctx.settings
    current = gold_dataset(settings, ctx.store).current()
    if not current:
        return None
    _mlflow(settings)
    uri, name = settings.mlflow_uri, settings.model_name
    client = MlflowClient(uri, uri)
    with mlflow_errors(uri, "looking up the versions trained on this Gold"):
        done = version_trained_on(client, name, current.version)
        if done is None:
            return None
        champion = champion_version(client, name)
    tags = done.tags
    return {
        "gold_snapshot": current.version,
        "model_version": done.version,
        "model": tags.get("model"),
        "champion": champion,
        "promoted": False,
        "decision": "not trained",
        "reason": f"v{done.version} was trained on Gold snapshot {current.version} already; nothing new",
        "roc_auc": float(tags["roc_auc"]) if tags.get("roc_auc") else None,
        "nothing_new": True,
    }


def run(ctx: RunContext) -> dict:
    settings = ctx.settings
    # An MLflow server that is down fails here, in seconds, naming the setting (not after training).
    check_reachable("mlflow_tracking_uri", settings.mlflow_uri, settings.connect_timeout_s)
    done = already_trained(ctx)
    if done:
        log.info("train_model: %s", done["reason"])
        return done
    return train(ctx)


# ---- train: load -> split -> fit and evaluate -> judge -> log and register -> promote ----------------
@dataclass
class Fitted:
    """The winning candidate, fitted on every training row, and its figures on the held-out rows."""

    winner: str
    model: Pipeline
    comparison: list[dict]  # the cross-validation table: one row per candidate
    metrics: dict[str, float]  # NaN each when the held-out rows cannot be ranked
    figs: dict[str, Figure]  # plots of the held-out rows (none when they cannot be ranked)


def fit_and_evaluate(
    ctx: RunContext, X_train: pd.DataFrame, X_test: pd.DataFrame, y_train: pd.Series, y_test: pd.Series
) -> Fitted:
    """Compare the candidates by cross-validation on the training rows, fit the winner on all of
    them, and score it on the held-out rows."""
    from threadpoolctl import threadpool_limits

    from training.model import CV_FOLDS, METRICS, build_pipeline, candidates, compare, evaluate, plots, positive_scores

    contract, seed = ctx.contract, ctx.settings.seed
    folds = min(CV_FOLDS, int(y_train.value_counts().min()))  # every fold holds both classes
    ranks = y_test.nunique() == 2  # the held-out rows can be ranked: ROC AUC, plots
    with threadpool_limits(1):  # as in compare(): OpenMP's spinning threads are slow on shared cores
        winner, comparison = compare(contract, X_train, y_train, seed, folds)
        model = build_pipeline(contract, candidates(seed)[winner]).fit(X_train, y_train)
        # Too few held-out rows to rank: no figures (NaN), and decide() promotes nothing.
        metrics = (
            evaluate(positive_scores(model.predict_proba(X_test)), y_test)
            if ranks
            else dict.fromkeys(METRICS, float("nan"))
        )
        figs = plots(model, X_test, y_test, seed) if ranks else {}
    return Fitted(winner, model, comparison, metrics, figs)


def run_params(ctx: RunContext, figures: dict, fitted: Fitted) -> dict:
    """The MLflow run's params: the data it trained on, the contract, the candidates and the winner."""
    from training.model import candidates, feature_names, holdout_rule, hyperparameters

    settings, contract = ctx.settings, ctx.contract
    data = ("gold_snapshot", "silver_version", "rows_total", "rows_train", "rows_test", "positive_rate")
    return {
        **{k: figures[k] for k in data},
        "contract": f"{contract.entity} v{contract.version}",
        "features": ",".join(feature_names(contract)),
        "model": fitted.winner,
        "candidates": ",".join(r["model"] for r in fitted.comparison),
        "cv_folds": fitted.comparison[0]["folds"],
        **{f"hp_{k}": v for k, v in hyperparameters(candidates(settings.seed)[fitted.winner]).items()},
        "seed": settings.seed,
        "holdout": holdout_rule(contract),
        "interval": str(ctx.interval),
    }


def log_run(
    mlflow: ModuleType,
    ctx: RunContext,
    figures: dict,
    fitted: Fitted,
    champion: Champion,
    decision: Decision,
    input_example: pd.DataFrame,
) -> tuple[str, ModelInfo]:
    """One MLflow run: params, metrics, the comparison table, plots, the decision and the model.
    Returns (run id, the logged model's info)."""
    import matplotlib.pyplot as plt  # plots() chose the headless backend

    from training.model import signature

    settings, contract = ctx.settings, ctx.contract
    snapshot, comparison = figures["gold_snapshot"], fitted.comparison
    cv = {r["model"]: r for r in comparison}
    with mlflow_errors(settings.mlflow_uri, "logging the run"):
        exp_id = ensure_experiment(mlflow, settings)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{snapshot}") as active:
            mlflow.log_params(run_params(ctx, figures, fitted))
            mlflow.log_metrics(fitted.metrics)
            for m, r in cv.items():
                mlflow.log_metrics(
                    {f"cv_roc_auc_{m}": r["cv_roc_auc_mean"], f"cv_roc_auc_std_{m}": r["cv_roc_auc_std"]}
                )
            if champion.roc_auc is not None:
                mlflow.log_metric("champion_roc_auc_same_rows", champion.roc_auc)
            mlflow.log_table(pd.DataFrame(comparison), artifact_file="model_comparison.json")
            for fname, fig in fitted.figs.items():
                mlflow.log_figure(fig, f"plots/{fname}")
                plt.close(fig)
            mlflow.set_tags({"champion_decision": decision.outcome, "champion_reason": decision.reason})
            info = mlflow.sklearn.log_model(
                fitted.model,
                name="model",
                signature=signature(contract),
                input_example=input_example,
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=trusted_types(fitted.model),
                # Stated, not inferred: inference re-imports the model in a subprocess (about 8 s a run).
                pip_requirements=[f"{p}=={package_version(p)}" for p in SERVING_PACKAGES],
            )
            return active.info.run_id, info


def describe_version(
    client: MlflowClient,
    ctx: RunContext,
    version: str,
    figures: dict,
    fitted: Fitted,
    champion: Champion,
    decision: Decision,
) -> None:
    """Describe the registered model and the new version (tags and text); move the alias when the
    decision promotes it."""
    from training.model import holdout_rule

    settings, contract, name = ctx.settings, ctx.contract, ctx.settings.model_name
    with mlflow_errors(settings.mlflow_uri, "describing the registered model"):
        client.update_registered_model(name, description=model_description(contract, settings.contract))
        tags = {
            **{
                k: str(figures[k])
                for k in ("gold_snapshot", "silver_version", "rows_total", "rows_labelled", "rows_train", "rows_test")
            },
            "roc_auc": f"{fitted.metrics['roc_auc']:.4f}",
            "model": fitted.winner,
            "contract": f"{contract.entity} v{contract.version}",
            "holdout": holdout_rule(contract),
            "champion_decision": decision.outcome,
            "champion_reason": decision.reason,
        }
        if champion.version is not None:
            tags["previous_champion"] = champion.version
            if champion.roc_auc is not None:
                tags["previous_champion_roc_auc_same_rows"] = f"{champion.roc_auc:.4f}"
                tags["comparison_rows"] = str(figures["rows_test"])
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, v)
        client.update_model_version(name, version, description=version_description(fitted.winner, figures, decision))
        if decision.promote:
            client.set_registered_model_alias(name, CHAMPION, version)


def train(ctx: RunContext) -> dict:
    """Load Gold, split off the held-out rows, fit and evaluate, judge against the champion, log and
    register the version, and promote it when the champion rule says so (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from training.model import holdout_rule, labelled, split

    settings, contract = ctx.settings, ctx.contract
    # load
    current, gold = read_gold(ctx)
    snapshot, label = current.version, contract.label.column
    rows = labelled(gold, contract)
    if rows[label].nunique() < 2:  # every label alike: nothing to learn, and likely a broken label feed
        raise StageError(f"Gold snapshot {snapshot} has a single class in {label!r}: nothing to learn")
    # split
    X_train, X_test, y_train, y_test = split(gold, contract)
    few = too_few(snapshot, contract, y_train, y_test)
    if few:  # tiny Gold, as with too few held-out rows: no model yet, and the run goes on
        log.warning("train_model: %s", few)
        return {
            "gold_snapshot": snapshot,
            "promoted": False,
            "decision": "not trained",
            "reason": few,
            "rows_train": len(X_train),
            "rows_test": len(X_test),
        }
    # fit and evaluate
    fitted = fit_and_evaluate(ctx, X_train, X_test, y_train, y_test)
    metrics = fitted.metrics
    figures = {
        "gold_snapshot": snapshot,
        "silver_version": current.silver_version,
        "rows_total": len(gold),
        "rows_labelled": len(rows),
        "rows_train": len(X_train),
        "rows_test": len(X_test),
        "positive_rate": round(float(rows[label].mean()), 4),
        **metrics,
    }
    # judge: the champion, scored on the same held-out rows
    mlflow = _mlflow(settings)
    from mlflow.tracking import MlflowClient  # after _mlflow(): it sets MLflow's retries first

    uri, name = settings.mlflow_uri, settings.model_name
    client = MlflowClient(uri, uri)
    with mlflow_errors(uri, "scoring the champion"), threadpool_limits(1):
        champion = score_champion(mlflow, client, name, X_test, y_test, holdout_rule(contract))
    decision = decide(metrics["roc_auc"], len(X_test), int(y_test.nunique()), settings.min_test_rows, champion)
    # log, register and describe; move the alias
    run_id, info = log_run(mlflow, ctx, figures, fitted, champion, decision, X_train.head(5))
    version = register(client, name, info, run_id, uri)
    describe_version(client, ctx, version, figures, fitted, champion, decision)
    if decision.promote:  # retention keeps the champion's lineage: its Gold snapshot and Silver version
        why = f"{name} v{version} ({CHAMPION}) was trained on it"
        gold_dataset(settings, ctx.store).pin(CHAMPION, {"features": snapshot}, why)
        if current.get("silver_version") is not None:
            silver_dataset(settings, ctx.store).pin_version(CHAMPION, current["silver_version"], why)
    new_champion = version if decision.promote else champion.version
    log.info(
        "model v%s (%s) roc_auc=%.4f: %s (%s)",
        version,
        fitted.winner,
        metrics["roc_auc"],
        decision.outcome,
        decision.reason,
    )
    return {
        "gold_snapshot": snapshot,
        "run_id": run_id,
        "model_version": version,
        "model": fitted.winner,
        "champion": new_champion,
        "promoted": decision.promote,
        "decision": decision.outcome,
        "reason": decision.reason,
        "champion_roc_auc_same_rows": None if champion.roc_auc is None else round(champion.roc_auc, 4),
        "rows_test": len(X_test),
        **{k: round(v, 4) for k, v in metrics.items()},
    }
