"""The champion is compared on rows neither model trained on (issue 27, finding 4), and a class
with too few rows is refused with its counts (issue 27, one member of a class).

The overlap test uses a champion that memorises its training rows: a contract whose only other
feature is a categorical token unique to each key, with labels that are pure noise. The logistic
regression (both candidates tie at 0.5 in cross-validation, and ties go to it) learns one weight per
token, so it ranks the rows it trained on almost perfectly and every other row alike (ROC AUC 0.5
exactly). Scored on any row it trained on, its ROC AUC rises above 0.5: that is the overlap, seen
from outside the stage.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.reliability.harness import cli_env, run_cli_in_process
from tests.training.gold import publish_gold, synthetic_gold, train

pytestmark = pytest.mark.integration

TOKENS = {
    "entity": "tokens",
    "version": 1,
    "primary_key": "account_no",  # an integer key, as in the subscribers example
    "event_id": "event_id",
    "label": {"column": "churned", "positive": True},
    "columns": [
        {"name": "event_id", "type": "string", "nullable": False},
        {"name": "account_no", "type": "int", "nullable": False},
        {"name": "token", "type": "string", "nullable": False, "feature": "categorical"},
        {"name": "x", "type": "double", "nullable": False},
        {"name": "churned", "type": "boolean", "nullable": False},
    ],
}


def tokens_gold(n: int, informative_x: bool, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.5).astype("int32")
    noise = np.random.default_rng(seed + 1).normal(0, 1, n)
    return pd.DataFrame(
        {
            "account_no": np.arange(1000, 1000 + n, dtype="int64"),
            "token": [f"t{i}" for i in range(n)],
            "x": (label + noise) if informative_x else np.zeros(n),
            "churned": label,
        }
    )


def test_the_champion_is_compared_on_rows_it_never_trained_on(make_settings, tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump(TOKENS))
    settings = make_settings(seed=11, contract=str(path))
    publish_gold(settings, tokens_gold(1000, informative_x=False))  # labels are noise: nothing to learn
    champion = train(settings)
    assert champion["promoted"] and champion["model"] == "logistic_regression", champion
    # Gold grows by a few rows, the old rows' keys, tokens and labels stay; x now carries the label.
    publish_gold(settings, tokens_gold(1010, informative_x=True))
    challenger = train(settings)
    # On rows it never trained on, the memorising champion ranks nothing: exactly 0.5. Any row of
    # its training set among the comparison rows lifts this figure (the old random split: ~0.9).
    assert challenger["champion_roc_auc_same_rows"] == pytest.approx(0.5, abs=1e-9), challenger
    assert challenger["promoted"] and challenger["roc_auc"] > 0.65, challenger
    from mlflow.tracking import MlflowClient

    tags = (
        MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
        .get_model_version("tokens-churned", challenger["model_version"])
        .tags
    )
    assert tags["comparison_rows"] == str(challenger["rows_test"]) and int(tags["comparison_rows"]) > 200
    assert tags["holdout"] == champion_tags_holdout(settings, champion["model_version"])  # one rule for both
    assert f"on the same {tags['comparison_rows']} held-out rows" in tags["champion_reason"]


def champion_tags_holdout(settings, version: str) -> str:
    from mlflow.tracking import MlflowClient

    return (
        MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
        .get_model_version("tokens-churned", version)
        .tags["holdout"]
    )


def test_a_class_with_one_row_trains_nothing_and_names_the_counts(make_settings, tmp_path):
    """Tiny Gold, as with too few held-out rows: wherever the single positive row falls, exit 0, no
    version registered, and the stage's figures and the run's model line name the class counts."""
    settings = make_settings()
    gold = synthetic_gold(400)
    gold["churned"] = 0
    gold.loc[17, "churned"] = 1
    snapshot = publish_gold(settings, gold)
    result = run_cli_in_process(["stage", "train_model"], cli_env(tmp_path))
    assert result.returncode == 0, result.text
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["decision"] == "not trained" and not figures["promoted"] and "model_version" not in figures, figures
    reason = figures["reason"]
    assert f"Gold snapshot {snapshot} has too few rows of a class" in reason and "at least 3 of each class" in reason, (
        reason
    )
    assert re.search(r"hold \d+ negative and [01] positive \(churned = True\)", reason), reason
    assert "Traceback" not in result.text
    from mlflow.tracking import MlflowClient

    assert (
        MlflowClient(settings.mlflow_uri, settings.mlflow_uri).search_model_versions(f"name = '{settings.model_name}'")
        == []
    )
    run = run_cli_in_process(["run", "--stage", "train_model"], cli_env(tmp_path))
    assert run.returncode == 0 and f"model {settings.model_name} not trained: Gold snapshot {snapshot}" in run.text, (
        run.text
    )


def test_a_champion_trained_before_the_holdout_is_replaced_once(make_settings):
    """A champion with no `holdout` tag (registered by the code before the holdout) trained on rows
    unknown to us: no comparison is fair, so the challenger takes the alias, saying why; from then
    on the champion carries the rule and the comparison is made again."""
    from mlflow.tracking import MlflowClient

    settings = make_settings(seed=11)
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    good = synthetic_gold(1000)
    publish_gold(settings, good)
    old = train(settings)
    client.delete_model_version_tag(settings.model_name, old["model_version"], "holdout")  # as the old code left it
    publish_gold(settings, good)
    new = train(settings)
    assert new["promoted"] and new["champion_roc_auc_same_rows"] is None, new
    assert f"champion v{old['model_version']} cannot be compared on rows it never trained on" in new["reason"]
    assert "records no holdout" in new["reason"]
    publish_gold(settings, good)
    again = train(settings)  # the same data again: now compared, and a tie keeps the champion
    assert not again["promoted"] and again["champion_roc_auc_same_rows"] == again["roc_auc"], again


def test_held_out_rows_of_one_class_train_but_promote_nothing(make_settings):
    """Tiny Gold whose held-out rows hold one class: the model is trained and registered, its ROC AUC
    is undefined (NaN), and the rule promotes nothing, whatever min_test_rows allows."""
    from training.model import in_holdout

    settings = make_settings(seed=11, min_test_rows=1)
    gold = synthetic_gold(60)
    held = in_holdout(gold["customer_id"])
    gold["churned"] = np.where(held, 0, np.arange(len(gold)) % 2).astype("int32")
    publish_gold(settings, gold)
    result = train(settings)
    assert result["decision"] == "not_promoted" and "single class" in result["reason"], result
    assert np.isnan(result["roc_auc"]) and result["rows_test"] == int(held.sum()) > 0
