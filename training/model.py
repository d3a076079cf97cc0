"""The churn model: pure functions from a Gold frame to a fitted pipeline, metrics and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402

from mdp.core.contract import load_contract  # noqa: E402

# Interim: the feature lists come from the bundled contract's roles (issue 12 makes the model follow any contract).
_ROLES = load_contract().features()
FEATURES_NUMERIC = [n for n, r, _ in _ROLES if r == "numeric"]
FEATURES_CATEGORICAL = [n for n, r, _ in _ROLES if r in ("categorical", "boolean")]
FEATURES = FEATURES_NUMERIC + FEATURES_CATEGORICAL


def split(gold: pd.DataFrame, label: str, seed: int, test_size: float = 0.25):
    X = gold[FEATURES].copy()
    X["has_phone"] = X["has_phone"].astype(str)
    y = gold[label].astype(int)
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


def build_pipeline(seed: int) -> Pipeline:
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), FEATURES_CATEGORICAL)],
        remainder="passthrough",
    )
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08, max_leaf_nodes=15, random_state=seed)
    return Pipeline([("features", pre), ("model", clf)])


def evaluate(model: Pipeline, X_test: pd.DataFrame, y_test: pd.Series) -> dict[str, float]:
    proba = model.predict_proba(X_test)[:, 1]
    pred = (proba >= 0.5).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y_test, proba)),
        "f1": float(f1_score(y_test, pred, zero_division=0)),
        "precision": float(precision_score(y_test, pred, zero_division=0)),
        "recall": float(recall_score(y_test, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y_test, pred)),
    }


def plots(model: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, seed: int) -> dict[str, plt.Figure]:
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
    imp = permutation_importance(model, sample, y_test.loc[sample.index], scoring="roc_auc", n_repeats=3, random_state=seed, n_jobs=1)
    order = np.argsort(imp.importances_mean)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh(np.array(FEATURES)[order], imp.importances_mean[order], xerr=imp.importances_std[order])
    ax.set_title("Permutation importance (drop in ROC AUC)")
    fig.tight_layout()
    figs["feature_importance.png"] = fig
    return figs
