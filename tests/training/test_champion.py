"""The champion guard, through the real train_model stage and a real MLflow (the embedded sqlite store).

Worse and better models are made on purpose: the same Gold with the training rows' features shuffled
(the held-out rows, and so the split, stay exactly the same) learns nothing. Each case checks the alias,
the decision the version's tags record, and that both models were scored on the same held-out rows.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from mdp.core.contract import CONTRACTS_DIR, load_contract
from mdp.core.errors import Unavailable
from tests.training.gold import publish_gold, shuffle_training_features, synthetic_gold, train
from training.model import split

pytestmark = pytest.mark.integration
C = load_contract()
N = 1000  # 247 held-out rows: above the default min_test_rows (200)


@pytest.fixture
def settings(make_settings):
    return make_settings(seed=11)


def client_for(settings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(settings.mlflow_uri, settings.mlflow_uri)


def champion_of(settings) -> str | None:
    aliases = client_for(settings).get_registered_model(settings.model_name).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def tags_of(settings, version: str) -> dict:
    return client_for(settings).get_model_version(settings.model_name, version).tags


def auc_of_version_on(settings, version: str, gold) -> float:
    """Independently of the stage: load a version and score it on the held-out rows of `gold`."""
    import mlflow

    _, X_test, _, y_test = split(gold, C)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    return float(roc_auc_score(y_test, model.predict(X_test)[:, 1]))


def test_first_model_is_promoted_and_logs_no_integer_warning(settings):
    publish_gold(settings, synthetic_gold(N))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = train(settings)
    integer_hints = [str(w.message) for w in caught if "Integer columns" in str(w.message)]
    assert integer_hints == []  # the signature is declared: no MLflow hint about integer columns
    assert first["promoted"] and first["decision"] == "promoted" and first["reason"] == "no champion yet"
    assert champion_of(settings) == first["model_version"] == "1"
    assert first["roc_auc"] > 0.75, first
    assert tags_of(settings, "1")["champion_decision"] == "promoted"
    import mlflow

    run = mlflow.get_run(first["run_id"])
    assert {f"cv_roc_auc_{m}" for m in ("logistic_regression", "gradient_boosting")} <= set(run.data.metrics)
    assert run.data.params["model"] == first["model"]
    doc = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/model_comparison.json")
    table = pd.DataFrame(doc["data"], columns=doc["columns"])
    assert sorted(table["model"]) == ["gradient_boosting", "logistic_regression"] and table["winner"].sum() == 1
    assert table.loc[table["winner"], "model"].item() == first["model"]


def pinned(settings) -> tuple[int | None, str | None]:
    from mdp.core.tables import gold_dataset, silver_dataset

    g, s = gold_dataset(settings).pins().get("champion"), silver_dataset(settings).pins().get("champion")
    return (g and g["versions"]["features"]), (s and s["versions"]["state"])


def test_a_worse_challenger_does_not_move_the_alias(settings):
    good = synthetic_gold(N)
    first_snapshot = publish_gold(settings, good)
    champ = train(settings)
    assert pinned(settings) == (first_snapshot, f"silver-for-{first_snapshot}")  # retention keeps its lineage
    worse = shuffle_training_features(good, C)
    publish_gold(settings, worse)
    challenger = train(settings)
    assert not challenger["promoted"] and challenger["decision"] == "kept", challenger
    assert champion_of(settings) == champ["model_version"]
    assert pinned(settings) == (first_snapshot, f"silver-for-{first_snapshot}")
    assert challenger["roc_auc"] < challenger["champion_roc_auc_same_rows"] - 0.1
    # The champion was scored on the challenger's test rows: the same figure, computed here apart.
    assert challenger["champion_roc_auc_same_rows"] == pytest.approx(
        auc_of_version_on(settings, champ["model_version"], worse), abs=1e-4
    )
    tags = tags_of(settings, challenger["model_version"])
    assert tags["champion_decision"] == "kept" and tags["previous_champion"] == champ["model_version"]
    assert tags["previous_champion_roc_auc_same_rows"] == f"{challenger['champion_roc_auc_same_rows']:.4f}"
    assert "keeps the alias" in tags["champion_reason"]


def test_a_better_challenger_moves_the_alias(settings):
    good = synthetic_gold(N)
    publish_gold(settings, shuffle_training_features(good, C))
    weak = train(settings)
    assert weak["promoted"]  # the first model, however weak
    better_snapshot = publish_gold(settings, good)
    better = train(settings)
    assert better["promoted"] and champion_of(settings) == better["model_version"], better
    assert pinned(settings)[0] == better_snapshot
    assert better["roc_auc"] > better["champion_roc_auc_same_rows"] + 0.1
    assert better["champion_roc_auc_same_rows"] == pytest.approx(
        auc_of_version_on(settings, weak["model_version"], good), abs=1e-4
    )
    assert "beats champion v1" in tags_of(settings, better["model_version"])["champion_reason"]


def test_an_equal_challenger_keeps_the_champion(settings):
    good = synthetic_gold(N)
    publish_gold(settings, good)
    first = train(settings)
    publish_gold(settings, good)  # a new snapshot with the same rows: the same model again
    again = train(settings)
    assert again["roc_auc"] == first["roc_auc"] == again["champion_roc_auc_same_rows"]
    assert not again["promoted"] and champion_of(settings) == first["model_version"]  # the tie rule
    assert "a tie keeps the champion" in tags_of(settings, again["model_version"])["champion_reason"]


def test_too_few_test_rows_promote_nothing(settings):
    publish_gold(settings, synthetic_gold(400))  # 99 held-out rows
    small = train(settings)
    assert not small["promoted"] and small["decision"] == "not_promoted"
    assert champion_of(settings) is None and pinned(settings) == (None, None)
    assert "only 99 held-out rows" in tags_of(settings, small["model_version"])["champion_reason"]


def test_a_champion_that_cannot_score_the_current_features_is_replaced(settings, tmp_path):
    data = yaml.safe_load((CONTRACTS_DIR / "customers.yaml").read_text())
    data["columns"].insert(-1, {"name": "loyalty_points", "type": "int", "nullable": True})
    wider = tmp_path / "customers-wider.yaml"
    wider.write_text(yaml.safe_dump(data))
    import numpy as np

    old = settings.model_copy(update={"contract": str(wider)})
    publish_gold(old, synthetic_gold(N, extra={"loyalty_points": np.arange(N, dtype="int32")}))
    first = train(old)
    assert first["promoted"]
    publish_gold(settings, synthetic_gold(N))  # the contract dropped loyalty_points; Gold follows it
    second = train(settings)
    assert second["promoted"] and champion_of(settings) == second["model_version"]
    assert "v1 cannot score the current features" in second["reason"] and "loyalty_points" in second["reason"]


def test_an_unreachable_mlflow_is_unavailable_not_no_champion():
    """A real client against a port where nothing listens: the lookup raises, never returns None."""
    from mlflow.tracking import MlflowClient

    from mdp.shell.services import free_port
    from training.train import champion_version, mlflow_errors

    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        with pytest.raises(Unavailable, match="did not answer while looking up"):
            with mlflow_errors(uri, "looking up the champion"):
                champion_version(MlflowClient(uri, uri), "customers-churn")


def test_a_missing_registered_model_is_no_champion(settings):
    from training.train import champion_version

    assert champion_version(client_for(settings), "never-registered") is None
