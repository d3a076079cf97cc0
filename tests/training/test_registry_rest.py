"""Models that describe themselves, seen through a real `mlflow server` (sqlite store, local artifacts,
free port): the registered model's description and each version's tags and description over the REST
API, and the champion loaded from the registry scoring rows with gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from mdp.core.contract import load_contract
from mdp.core.settings import get_settings
from mdp.shell.services import free_port
from tests.training.gold import publish_gold, synthetic_gold, train
from training.model import model_input

pytestmark = pytest.mark.integration
C = load_contract()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = Path(sys.executable).with_name("mlflow")
    if not binary.exists():
        pytest.skip(f"no mlflow command next to {sys.executable}: pip install mlflow==3.17.2")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        # The server's group (uvicorn, its job consumers): all of it, and nothing else.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """Two trainings on the same rows: v1 becomes champion, v2 ties and is kept out."""
    settings = get_settings(home=tmp_path_factory.mktemp("rest"), mlflow_tracking_uri=server, seed=5)
    gold = synthetic_gold(1000, seed=3)
    snapshots, figures = [], []
    for _ in range(2):
        snapshots.append(publish_gold(settings, gold))
        figures.append(train(settings))
    return settings, snapshots, figures


def rest(server: str, path: str, **params) -> dict:
    resp = requests.get(f"{server}/api/2.0/mlflow/{path}", params=params, timeout=30)
    resp.raise_for_status()
    return resp.json()


def test_registered_model_describes_what_it_predicts(server, trained):
    settings, _, _ = trained
    model = rest(server, "registered-models/get", name=settings.model_name)["registered_model"]
    text = model["description"]
    for words in (
        "probability",
        "`churned` is True",
        "one row per `customer_id`",
        "Contract: customers version 2",
        "numeric ['age', 'monthly_spend'",
        "a tie keeps the champion",
        "which no version trains on",
        "customer_id: blake2b('mdp-holdout-1:' + key) mod 100 < 25",
    ):
        assert words in text, text
    assert {a["alias"]: a["version"] for a in model["aliases"]} == {"champion": "1"}


def test_each_version_has_tags_and_a_description(server, trained):
    settings, snapshots, figures = trained
    versions = {}
    for v in ("1", "2"):
        mv = rest(server, "model-versions/get", name=settings.model_name, version=v)["model_version"]
        versions[v] = (mv["description"], {t["key"]: t["value"] for t in mv.get("tags", [])})
    for v, snapshot, fig in zip(("1", "2"), snapshots, figures, strict=False):
        description, tags = versions[v]
        # Its Delta version
        assert tags["gold_snapshot"] == str(snapshot) and f"Gold snapshot {snapshot} " in description
        assert tags["silver_version"] == f"silver-for-{snapshot}"
        # A quarter of the keys, by hash
        assert (tags["rows_total"], tags["rows_train"], tags["rows_test"]) == (
            "1000",
            "753",
            "247",
        )
        assert tags["holdout"] == "customer_id: blake2b('mdp-holdout-1:' + key) mod 100 < 25"
        assert tags["roc_auc"] == f"{fig['roc_auc']:.4f}" and tags["model"] == fig["model"]
        assert tags["contract"] == "customers v2"
    desc1, tags1 = versions["1"]
    assert tags1["champion_decision"] == "promoted" and tags1["champion_reason"] == "no champion yet"
    assert "Champion decision: promoted (no champion yet)" in desc1
    desc2, tags2 = versions["2"]
    assert tags2["champion_decision"] == "kept" and tags2["previous_champion"] == "1"
    # The same model, the same rows
    assert tags2["previous_champion_roc_auc_same_rows"] == f"{figures[0]['roc_auc']:.4f}"
    assert "keeps the alias" in tags2["champion_reason"] and "Champion decision: kept" in desc2
    assert tags2["comparison_rows"] == "247" and "on the same 247 held-out rows" in tags2["champion_reason"]
    assert "comparison_rows" not in tags1  # no champion to compare with


def test_the_champion_from_the_registry_scores_rows_with_gaps(server, trained):
    import mlflow

    mlflow.set_tracking_uri(server)
    model = mlflow.pyfunc.load_model("models:/customers-churn@champion")
    rows = synthetic_gold(3, seed=8)
    X = model_input(rows, C)
    X.loc[0, "age"] = np.nan  # a numeric gap
    X.loc[1, ["monthly_spend", "tenure_days"]] = np.nan
    X.loc[1, "plan"] = None  # a categorical gap
    X["has_phone"] = X["has_phone"].astype(object)
    X.loc[2, "has_phone"] = None  # a boolean gap
    proba = np.asarray(model.predict(X))
    assert proba.shape == (3, 2) and np.isfinite(proba).all()
    assert np.allclose(proba.sum(axis=1), 1.0)
    # The same row as a JSON-like record with null, as a serving request would carry it.
    record = pd.DataFrame([{**X.iloc[0].to_dict(), "age": None}]).astype({"age": "float64"})
    assert np.asarray(model.predict(record)).shape == (1, 2)
