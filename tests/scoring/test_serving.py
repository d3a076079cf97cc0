"""Serving: MLflow's own model server, as a local process on a free port, answers one customer with the
batch score; `mdp serve` follows the champion alias when it moves."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from mdp.core import catalog
from mdp.core.contract import load_contract
from mdp.shell.services import free_port
from tests.scoring.test_scoring_embedded import score
from tests.training.gold import publish_gold, shuffle_training_features, synthetic_gold, train
from training.model import model_input

pytestmark = pytest.mark.integration
C = load_contract()
MLFLOW = Path(sys.executable).with_name("mlflow")
# The curl example in docs/SCORING.md.
DOCS_ROW = {
    "country": "DE",
    "age": 41,
    "plan": "pro",
    "monthly_spend": 79.5,
    "support_tickets": 3,
    "tenure_days": 420,
    "days_since_last_login": 12,
    "has_phone": True,
}


def request_body(rows) -> str:
    """Gold rows as the server's JSON: the model's input, with NaN as null."""
    records = model_input(rows, C).to_dict("records")
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]
    return json.dumps({"dataframe_records": clean})


def predict(url: str, rows) -> list[float]:
    resp = requests.post(
        f"{url}/invocations", data=request_body(rows), headers={"Content-Type": "application/json"}, timeout=30
    )
    resp.raise_for_status()
    return [p[1] for p in resp.json()["predictions"]]


def wait_ping(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the model server did not answer /ping: {log.read_text()[-3000:]}")
        time.sleep(1)


def stop(proc: subprocess.Popen) -> int:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=10)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, spark):
    if not MLFLOW.exists():
        pytest.skip(f"no mlflow command next to {sys.executable}: pip install mlflow==3.17.2")
    from mdp.core.settings import get_settings

    settings = get_settings(home=tmp_path_factory.mktemp("serving"), seed=5)
    gold = synthetic_gold(1500, seed=4)
    publish_gold(settings, gold)
    assert train(settings)["champion"] == "1"
    figures = score(settings)
    scores = catalog.read(settings, f"gold.{C.scores_name}", figures["scores_version"]).to_pandas()
    return settings, gold, scores.set_index(C.primary_key)["score"]


def test_mlflow_model_server_answers_with_the_batch_score(batch, tmp_path):
    settings, gold, scores = batch
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    # MLflow runs uvicorn from PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.mlflow_uri,
        "PATH": os.pathsep.join([str(MLFLOW.parent), os.environ.get("PATH", "")]),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(MLFLOW),
                "models",
                "serve",
                "-m",
                f"models:/{settings.model_name}@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ping(url, proc, log)
            one = gold.iloc[[17]]
            [got] = predict(url, one)
            assert abs(got - scores[one[C.primary_key].iloc[0]]) <= 1e-9
            # A few at once: each equals its batch score.
            some = gold.iloc[[3, 400, 901]]
            for got, key in zip(predict(url, some), some[C.primary_key], strict=True):
                assert abs(got - scores[key]) <= 1e-9
            # The request docs/SCORING.md shows (whole numbers where the signature says double) answers too.
            import mlflow

            resp = requests.post(
                f"{url}/invocations",
                data=json.dumps({"dataframe_records": [DOCS_ROW]}),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
            mlflow.set_tracking_uri(settings.mlflow_uri)
            model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
            expected = model.predict_proba(model_input(pd.DataFrame([DOCS_ROW]), C))[0, 1]
            assert abs(resp.json()["predictions"][0][1] - expected) <= 1e-9
        finally:
            stop(proc)


def test_mdp_serve_follows_the_champion_alias(batch, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    settings, gold, scores = batch
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "mdp-serve.log"
    env = {**os.environ, "MDP_HOME": str(settings.home), "MDP_SEED": "5"}
    one = gold.iloc[[42]]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mdp.shell.cli", "serve", "--port", str(port), "--poll", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ping(url, proc, log)
            assert abs(predict(url, one)[0] - scores[one[C.primary_key].iloc[0]]) <= 1e-9  # v1, the champion

            # A second version (trained on shuffled features: different scores), then the alias moves to it.
            publish_gold(settings, shuffle_training_features(gold, C))
            v2 = train(settings)["model_version"]
            mlflow.set_tracking_uri(settings.mlflow_uri)
            expected = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{v2}").predict_proba(
                model_input(one, C)
            )[0, 1]
            assert abs(expected - scores[one[C.primary_key].iloc[0]]) > 1e-6
            MlflowClient(settings.mlflow_uri, settings.mlflow_uri).set_registered_model_alias(
                settings.model_name, "champion", v2
            )

            deadline = time.monotonic() + 180
            while True:
                try:
                    if abs(predict(url, one)[0] - expected) <= 1e-9:
                        break
                except requests.RequestException:
                    pass  # the server restarts on the new version
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serving did not follow the alias to v{v2}: {log.read_text()[-3000:]}")
                time.sleep(1)
        finally:
            assert stop(proc) == 0, log.read_text()[-3000:]
    with pytest.raises(requests.ConnectionError):  # the model server went with its supervisor
        requests.get(f"{url}/ping", timeout=2)
