"""The model, from the contract: pure functions from a Gold frame to candidates, a winner, metrics, plots.

Preprocessing follows the feature roles (Contract.features()):
- numeric: gaps filled as the feature's `impute` says (default median), then standardised;
- boolean: read as 0/1, gaps filled (default most frequent);
- categorical: gaps filled (default most frequent), then one-hot (unseen values are ignored).

The model's input is declared from the contract too (`signature`): numeric features are doubles, so
a row with a gap (NaN) passes MLflow's schema enforcement; booleans are booleans (None for a gap);
categoricals are strings. `model_input` turns a Gold frame into exactly that.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mdp.core.contract import Contract, FeatureRole, Impute

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    from mlflow.models import ModelSignature

# The holdout: a fixed share of keys, chosen by a salted hash of the key (see in_holdout). Changing
# any of these changes the recorded rule, and a champion held out by another rule is replaced.
HOLDOUT_SALT, HOLDOUT_BUCKETS, HOLDOUT_TAKEN = "mdp-holdout-1", 100, 25
CV_FOLDS = 5
MIN_CLASS_ROWS = 3  # training rows of each class, at least (train.too_few says why)
# Types skops must be told to load, beyond its defaults: the boosted trees' predictor, the function
# that reads booleans as 0/1, the imputers' dtype and missing-value marker. Training checks that a
# fitted model holds no other type (a new one must be reviewed and listed here).
SKOPS_TRUSTED = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.asarray",
    "numpy.dtype",
    "pandas._libs.missing.NAType",
)


# ---- the model's input -------------------------------------------------------------------------
def feature_names(contract: Contract) -> list[str]:
    return [n for n, _, _ in contract.features()]


def model_input(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Gold rows -> the model's input, typed as `signature` declares: doubles, booleans (object with
    None where missing) and strings (None where missing)."""
    out = {}
    for name, role, _ in contract.features():
        s = frame[name]
        if role == "numeric":
            out[name] = pd.to_numeric(s).astype("float64")
        elif role == "boolean":
            out[name] = s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else bool(v))
        else:
            out[name] = s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v))
    return pd.DataFrame(out, index=frame.index)


def signature(contract: Contract) -> ModelSignature:
    """The MLflow signature, declared from the contract (not inferred from a sample)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    kind = {"numeric": "double", "boolean": "boolean", "categorical": "string"}
    inputs = Schema([ColSpec(kind[role], name) for name, role, _ in contract.features()])
    # pyfunc predicts with predict_proba: one row of [P(negative), P(positive)] per input row.
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def labelled(gold: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The Gold rows with a label, sorted by key: the same rows in the same order on every run."""
    label = contract.label.column
    return gold[gold[label].notna()].sort_values(contract.primary_key, kind="stable").reset_index(drop=True)


def key_text(value: object) -> str:
    """A key as text for the holdout hash: integers without a decimal point (a key read as 42,
    42.0 or "42" is one key), dates in ISO form, anything else as str()."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)) or isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def holdout_rule(contract: Contract) -> str:
    """The rule, as recorded in each version's `holdout` tag: two versions were held out alike only
    when their tags are equal."""
    return f"{contract.primary_key}: blake2b('{HOLDOUT_SALT}:' + key) mod {HOLDOUT_BUCKETS} < {HOLDOUT_TAKEN}"


def in_holdout(keys: pd.Series) -> np.ndarray:
    """True for the keys in the holdout. A key's bucket depends on the key alone (a fixed salt, not
    the seed), so it never changes as Gold grows: no version ever trains on a held-out key."""

    def bucket(value: object) -> int:
        digest = hashlib.blake2b(f"{HOLDOUT_SALT}:{key_text(value)}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % HOLDOUT_BUCKETS

    return np.fromiter((bucket(v) < HOLDOUT_TAKEN for v in keys), dtype=bool, count=len(keys))


def split(gold: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The labelled rows whose key is in the holdout are the test rows; the others train.
    Returns X_train, X_test, y_train, y_test (X in `model_input` form); the index is the row's
    position in `labelled(gold)`."""
    rows = labelled(gold, contract)
    y = rows[contract.label.column].astype(int)
    X = model_input(rows, contract)
    test = in_holdout(rows[contract.primary_key])
    return X[~test], X[test], y[~test], y[test]


# ---- preprocessing and candidates -------------------------------------------------------------------
def _imputer(strategy: str | None, default: str) -> SimpleImputer:
    strategy = strategy or default
    if strategy == "zero":
        return SimpleImputer(strategy="constant", fill_value=0)
    return SimpleImputer(strategy=strategy)


def preprocessor(contract: Contract) -> ColumnTransformer:
    """One branch per (role, impute strategy): the contract decides how each feature is prepared."""
    groups: dict[tuple[FeatureRole, Impute | None], list[str]] = {}
    for name, role, impute in contract.features():
        groups.setdefault((role, impute), []).append(name)
    branches = []
    for (role, impute), names in groups.items():
        if role == "numeric":
            steps = [_imputer(impute, "median"), StandardScaler()]
        elif role == "boolean":
            # True/False/None -> 1.0/0.0/NaN, so the imputer sees the gaps.
            steps = [
                FunctionTransformer(np.asarray, kw_args={"dtype": "float64"}, feature_names_out="one-to-one"),
                _imputer(impute, "most_frequent"),
            ]
        else:
            # pd.NA as the marker: the imputer then finds None (Gold, JSON) and NaN (pandas) alike.
            steps = [
                SimpleImputer(missing_values=pd.NA, strategy=impute or "most_frequent"),
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            ]
        branches.append((f"{role}_{impute or 'default'}", make_pipeline(*steps), names))
    return ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=False)


def candidates(seed: int) -> dict[str, BaseEstimator]:
    """The estimators compared on every run (each behind the same preprocessing)."""
    return {
        "logistic_regression": LogisticRegression(C=1.0, l1_ratio=0.0, max_iter=2000),  # L2, strength 1/C
        "gradient_boosting": HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.08, max_leaf_nodes=15, early_stopping=True, random_state=seed
        ),
    }


def build_pipeline(contract: Contract, estimator: BaseEstimator) -> Pipeline:
    return Pipeline([("features", preprocessor(contract)), ("model", estimator)])


def hyperparameters(estimator: BaseEstimator) -> dict:
    keep = ("C", "l1_ratio", "max_iter", "learning_rate", "max_leaf_nodes", "l2_regularization", "early_stopping")
    return {k: v for k, v in estimator.get_params().items() if k in keep}


def compare(
    contract: Contract, X_train: pd.DataFrame, y_train: pd.Series, seed: int, folds: int = CV_FOLDS
) -> tuple[str, list[dict]]:
    """Cross-validated ROC AUC of every candidate on the training split.
    Returns (winner name, rows of the comparison table); ties go to the first candidate listed."""
    from threadpoolctl import threadpool_limits

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    rows: list[dict[str, Any]] = []
    for name, est in candidates(seed).items():
        # One thread: on a shared 2-core machine OpenMP's spinning threads made this 7x slower.
        with threadpool_limits(1):
            scores = cross_val_score(
                build_pipeline(contract, est), X_train, y_train, cv=cv, scoring="roc_auc", n_jobs=1
            )
        rows.append(
            {
                "model": name,
                "cv_roc_auc_mean": float(np.mean(scores)),
                "cv_roc_auc_std": float(np.std(scores)),
                "folds": folds,
                "params": ", ".join(f"{k}={v}" for k, v in hyperparameters(est).items()),
            }
        )
    best = max(rows, key=lambda r: r["cv_roc_auc_mean"])  # max keeps the first of equals
    for r in rows:
        r["winner"] = r is best
    return best["model"], rows


# ---- evaluation -----------------------------------------------------------------------------------
def positive_scores(predicted: np.ndarray | pd.DataFrame) -> np.ndarray:
    """The positive-class probability from predict_proba's output (n x 2) or a pyfunc's."""
    arr = np.asarray(predicted.to_numpy() if hasattr(predicted, "to_numpy") else predicted, dtype="float64")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"expected class probabilities of shape (n, 2), got {arr.shape}")
    return arr[:, 1]


METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")


def evaluate(proba: np.ndarray, y: pd.Series) -> dict[str, float]:
    pred = (proba >= 0.5).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
    }


def plots(model: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, seed: int) -> dict[str, plt.Figure]:
    import matplotlib

    matplotlib.use("Agg")  # headless: plots are files, never windows (imported here: scoring needs no matplotlib)
    import matplotlib.pyplot as plt

    figs = {}
    fig, ax = plt.subplots(figsize=(5, 5))
    RocCurveDisplay.from_estimator(model, X_test, y_test, ax=ax)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_title("ROC curve (test set)")
    figs["roc_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay.from_estimator(model, X_test, y_test, ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (threshold 0.5)")
    figs["confusion_matrix.png"] = fig

    sample = X_test.sample(n=min(3000, len(X_test)), random_state=seed)
    imp = permutation_importance(
        model, sample, y_test.loc[sample.index], scoring="roc_auc", n_repeats=3, random_state=seed, n_jobs=1
    )
    order = np.argsort(imp.importances_mean)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh(np.array(X_test.columns)[order], imp.importances_mean[order], xerr=imp.importances_std[order])
    ax.set_title("Permutation importance (drop in ROC AUC)")
    fig.tight_layout()
    figs["feature_importance.png"] = fig
    return figs
