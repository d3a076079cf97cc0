"""score_customers in the embedded profile (Spark local, sqlite MLflow): one score per Gold entity
from the champion's version, equal to the model's own predict_proba; reruns are no-ops; the same
Gold and model give the same scores; no champion is a clear no-op; `mdp score` agrees with the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.contract import load_contract
from mdp.core.lake import read_parquet
from mdp.core.manifests import VersionManifest
from scoring.champion import SCORE
from tests.training.gold import HOUR, publish_gold, synthetic_gold, train
from training.model import model_input

pytestmark = pytest.mark.integration
C = load_contract()
KEY = C.primary_key


def score(settings) -> dict:
    from mdp.core.lake import Interval
    from scoring.score import run

    return run(RunContext(settings, Interval.hour_of(HOUR), run_id="test-score"))


def scores_table(settings) -> str:
    return f"gold.{settings.data_contract.scores_name}"


def read_scores(settings, version: int) -> pd.DataFrame:
    return catalog.read(settings, scores_table(settings), version).to_pandas()


def gold_with_unlabelled(n: int) -> pd.DataFrame:
    gold = synthetic_gold(n, seed=3)
    gold["churned"] = gold["churned"].astype("Int32")
    gold.loc[gold.index[-7:], "churned"] = pd.NA  # not yet known: not trained on, still scored
    return gold


@pytest.fixture(scope="module")
def scored(tmp_path_factory, spark):
    from mdp.core.settings import get_settings

    settings = get_settings(home=tmp_path_factory.mktemp("scoring"), seed=5)
    gold = gold_with_unlabelled(2000)
    snapshot = publish_gold(settings, gold)
    trained = train(settings)
    first = score(settings)
    return settings, gold, snapshot, trained, first


def test_every_gold_entity_has_one_score_from_the_champion(scored):
    import mlflow
    from mlflow.tracking import MlflowClient

    settings, gold, snapshot, trained, first = scored
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    champion = str(client.get_model_version_by_alias(settings.model_name, "champion").version)
    assert trained["champion"] == champion and first["model_version"] == champion
    assert first["scored"] == len(gold) and first["new_scores"] and first["gold_snapshot"] == snapshot

    scores = read_scores(settings, first["scores_version"])
    assert len(scores) == len(gold) and scores[KEY].is_unique
    assert set(scores[KEY]) == set(gold[KEY])
    assert set(scores["model_version"]) == {champion} and set(scores["gold_snapshot"]) == {str(snapshot)}
    assert set(scores["model_name"]) == {settings.model_name}

    # The model's own predict_proba, computed here on the same Gold rows.
    mlflow.set_tracking_uri(settings.mlflow_uri)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{champion}")
    expected = pd.Series(model.predict_proba(model_input(gold, C))[:, 1], index=gold[KEY])
    got = scores.set_index(KEY)[SCORE].reindex(expected.index)
    assert np.abs(got.to_numpy() - expected.to_numpy()).max() <= 1e-9
    assert 0.0 < got.min() < got.max() < 1.0  # real probabilities, not a constant


def test_a_rerun_is_a_noop(scored):
    settings, _, snapshot, _, first = scored
    again = score(settings)
    assert not again["new_scores"]
    assert (again["scores_version"], again["scored"], again["gold_snapshot"]) == (
        first["scores_version"],
        first["scored"],
        snapshot,
    )
    assert catalog.current_version(settings, scores_table(settings)) == first["scores_version"] == 0  # one version only


def test_the_same_gold_and_model_give_the_same_scores(scored):
    settings, gold, _, _, first = scored
    republished = publish_gold(settings, gold)  # a new snapshot of the same rows
    second = score(settings)
    assert (
        second["new_scores"]
        and second["gold_snapshot"] == republished
        and second["scores_version"] != first["scores_version"]
    )
    a = read_scores(settings, first["scores_version"]).set_index(KEY).sort_index()
    b = read_scores(settings, second["scores_version"]).set_index(KEY).sort_index()
    assert a[SCORE].equals(b[SCORE])
    assert set(b["gold_snapshot"]) == {str(republished)}


def test_mdp_score_agrees_with_the_batch(scored, tmp_path, monkeypatch):
    from mdp.shell.cli import app

    settings, gold, _, _, _ = scored
    monkeypatch.setenv("MDP_HOME", str(settings.home))
    published = catalog.read(settings, scores_table(settings)).to_pandas().set_index(KEY)[SCORE]
    ids = list(gold[KEY].iloc[[0, 1234]])
    result = CliRunner().invoke(app, ["score", "--customer", ids[0], "--customer", ids[1]], terminal_width=200)
    assert result.exit_code == 0, result.output
    for i in ids:
        assert f"{published[i]:.6f}" in result.output.split(i, 1)[1].splitlines()[0]

    rows = gold.iloc[[5, 6, 7]].drop(columns=["churned", "as_of"])
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["score", "--file", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for i in rows[KEY]:
        assert f"{published[i]:.6f}" in result.output

    bad = tmp_path / "bad.csv"
    rows.drop(columns=["age"]).to_csv(bad, index=False)
    result = CliRunner().invoke(app, ["score", "--file", str(bad)], terminal_width=200)
    assert result.exit_code == 2 and "lacks the features ['age']" in " ".join(result.output.split())

    result = CliRunner().invoke(app, ["score", "--customer", "C9999999"], terminal_width=200)
    assert result.exit_code == 6 and "not in Gold snapshot" in " ".join(result.output.split())


def test_no_champion_is_a_clear_noop(make_settings, monkeypatch, spark):
    from mdp.shell.cli import app

    settings = make_settings(seed=5)
    publish_gold(settings, synthetic_gold(300, seed=1))
    figures = score(settings)
    assert figures["scored"] == 0 and "has no `champion` alias yet" in figures["skipped"]
    assert catalog.current_version(settings, scores_table(settings)) is None

    monkeypatch.setenv("MDP_HOME", str(settings.home))
    result = CliRunner().invoke(app, ["score", "--customer", "C0000001"], terminal_width=200)
    assert result.exit_code == 6 and "has no `champion` alias yet" in " ".join(result.output.split())


def test_the_driver_and_spark_workers_give_the_same_scores(scored, tmp_path):
    """A small Gold snapshot is scored in the driver; past score_in_driver_max_rows, Spark's Python
    workers score it (mapInPandas, the model shipped as an archive). Both ways, the same scores."""
    from scoring import champion
    from scoring.score import write_scores

    settings, gold, snapshot, _, first = scored
    assert first["scored_in"] == "driver"
    on_spark = settings.model_copy(update={"score_in_driver_max_rows": 0})
    ref = champion.resolve(on_spark)
    target = (tmp_path / "spark-scores").as_uri()
    # Later tests publish other snapshots.
    same_gold = VersionManifest(version=first["gold_snapshot"], rows=first["scored"])
    assert write_scores(RunContext(on_spark, first_interval()), ref, same_gold, target) == "spark"
    by_spark = read_parquet(on_spark, target).to_pandas().set_index(KEY).sort_index()
    by_driver = read_scores(settings, first["scores_version"]).set_index(KEY).sort_index()
    assert list(by_spark.columns) == list(by_driver.columns) and by_spark.index.equals(by_driver.index)
    assert np.abs(by_spark[SCORE].to_numpy() - by_driver[SCORE].to_numpy()).max() <= 1e-12
    assert (by_spark.drop(columns=SCORE) == by_driver.drop(columns=SCORE)).all().all()


def first_interval():
    from mdp.core.lake import Interval

    return Interval.hour_of(HOUR)
