"""The model follows the contract: input types, preprocessing per role, the split, the comparison,
and the champion rule. Pure functions on tiny pandas frames (no MLflow, no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mdp.core.contract import load_contract, parse_contract
from training.model import (
    CV_FOLDS,
    build_pipeline,
    candidates,
    compare,
    in_holdout,
    labelled,
    model_input,
    positive_scores,
    preprocessor,
    signature,
    split,
)
from training.train import Champion, decide

pytestmark = pytest.mark.unit
C = load_contract()


def tiny_contract(**impute):
    """Two numeric features (impute as given), a categorical, a boolean; label `left` = 'Yes'."""
    cols = [
        {"name": "eid", "type": "string", "nullable": False},
        {"name": "ref", "type": "string", "nullable": False},
        {"name": "income", "type": "double", "impute": impute.get("income")},
        {"name": "visits", "type": "int", "impute": impute.get("visits")},
        {"name": "tier", "type": "string", "allowed": ["a", "b", "c"], "impute": impute.get("tier")},
        {"name": "flag", "type": "boolean", "impute": impute.get("flag")},
        {"name": "notes", "type": "string"},  # free text: excluded
        {"name": "left", "type": "string"},
    ]
    return parse_contract(
        {
            "entity": "accounts",
            "version": 1,
            "primary_key": "ref",
            "event_id": "eid",
            "label": {"column": "left", "positive": "Yes"},
            "columns": cols,
        },
        "test",
    )


def tiny_gold() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ref": ["r1", "r2", "r3", "r4", "r5"],
            "income": [10.0, 20.0, 30.0, 100.0, np.nan],
            "visits": pd.array([1, 2, 2, 9, None], dtype="Int32"),
            "tier": ["a", "b", "b", None, "c"],
            "flag": pd.Series([True, True, False, None, True], dtype=object),
            "left": [1, 0, 1, 0, 1],
        }
    )


def test_model_input_is_typed_as_the_signature_declares():
    X = model_input(tiny_gold(), tiny_contract())
    assert list(X.columns) == ["income", "visits", "tier", "flag"]
    assert str(X["income"].dtype) == str(X["visits"].dtype) == "float64"  # numeric: doubles, gaps are NaN
    assert np.isnan(X["visits"].iloc[4])
    assert X["tier"].tolist() == ["a", "b", "b", None, "c"]
    assert X["flag"].tolist() == [True, True, False, None, True]
    sig = signature(tiny_contract())
    assert [(c.name, c.type.name) for c in sig.inputs.inputs] == [
        ("income", "double"),
        ("visits", "double"),
        ("tier", "string"),
        ("flag", "boolean"),
    ]


def test_customers_signature_declares_every_numeric_feature_as_double():
    sig = signature(C)
    types = {c.name: c.type.name for c in sig.inputs.inputs}
    assert {n for n, t in types.items() if t == "double"} == set(C.features_by_role("numeric"))
    assert types["has_phone"] == "boolean" and types["plan"] == types["country"] == "string"


def _branches(pre):
    return {name: pipe for name, pipe, _ in pre.transformers_}


def test_preprocessing_follows_roles_and_impute():
    contract = tiny_contract(income="mean", visits="zero")
    gold = tiny_gold()
    pre = preprocessor(contract).fit(model_input(gold, contract))
    br = _branches(pre)
    assert set(br) == {"numeric_mean", "numeric_zero", "categorical_default", "boolean_default"}
    assert br["numeric_mean"][0].statistics_.tolist() == [40.0]  # mean of 10, 20, 30, 100
    assert br["numeric_zero"][0].statistics_.tolist() == [0.0]
    assert br["categorical_default"][0].statistics_.tolist() == ["b"]  # most frequent
    assert br["boolean_default"][1].statistics_.tolist() == [1.0]  # most frequent of 1, 1, 0, 1
    names = list(pre.get_feature_names_out())
    assert names == ["income", "visits", "tier_a", "tier_b", "tier_c", "flag"]

    row = pd.DataFrame(
        {"ref": ["x"], "income": [np.nan], "visits": [np.nan], "tier": [None], "flag": [None], "left": [0]}
    )
    out = dict(zip(names, pre.transform(model_input(row, contract))[0], strict=False))
    mean_scaler, zero_scaler = br["numeric_mean"][1], br["numeric_zero"][1]
    assert out["income"] == pytest.approx((40.0 - mean_scaler.mean_[0]) / mean_scaler.scale_[0])
    assert out["visits"] == pytest.approx((0.0 - zero_scaler.mean_[0]) / zero_scaler.scale_[0])
    assert (out["tier_a"], out["tier_b"], out["tier_c"]) == (0.0, 1.0, 0.0)  # the gap became "b"
    assert out["flag"] == 1.0  # booleans are 0/1; the gap became the most frequent, True

    unseen = pd.DataFrame({"income": [1.0], "visits": [1.0], "tier": ["zzz"], "flag": [False]})
    enc = dict(zip(names, pre.transform(unseen)[0], strict=False))
    assert (enc["tier_a"], enc["tier_b"], enc["tier_c"], enc["flag"]) == (0.0, 0.0, 0.0, 0.0)  # unseen value: all zeros


def test_defaults_are_median_and_most_frequent():
    contract = tiny_contract()
    pre = preprocessor(contract).fit(model_input(tiny_gold(), contract))
    br = _branches(pre)
    assert br["numeric_default"][0].statistics_.tolist() == [25.0, 2.0]  # medians of income and visits


def test_contract_refuses_an_imputation_that_does_not_fit_the_role():
    with pytest.raises(ValueError, match=r"columns.tier.impute: median does not fit a categorical feature"):
        tiny_contract(tier="median")
    with pytest.raises(ValueError, match=r"columns.tier.impute: zero does not fit a categorical feature"):
        tiny_contract(tier="zero")
    assert tiny_contract(flag="zero").features()[-1] == ("flag", "boolean", "zero")  # a boolean gap may read as False


def test_contract_refuses_roles_the_model_cannot_read():
    base = load_contract().model_dump(mode="json")
    text_flag = {
        **base,
        "columns": [
            *base["columns"][:-1],
            {"name": "vip", "type": "string", "feature": "boolean"},
            base["columns"][-1],
        ],
    }
    with pytest.raises(ValueError, match=r"columns.vip.feature: boolean needs type boolean or int"):
        parse_contract(text_flag, "test")
    odd = {
        **base,
        "derived": [{"name": "tenure_band", "kind": "days_since", "column": "signup_date", "feature": "categorical"}],
    }
    with pytest.raises(ValueError, match=r"derived.tenure_band.feature"):
        parse_contract(odd, "test")


def _gold(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "ref": [f"r{i:05d}" for i in range(n)],
            "income": x,
            "visits": rng.integers(0, 5, n).astype("int32"),
            "tier": rng.choice(["a", "b", "c"], n),
            "flag": rng.random(n) < 0.5,
            "left": (x + rng.normal(scale=0.5, size=n) > 0).astype(int),
        }
    )


def test_split_is_deterministic_whatever_the_row_order():
    contract, gold = tiny_contract(), _gold(400)
    _, X_test, _, y_test = split(gold, contract)
    shuffled = gold.sample(frac=1.0, random_state=99)
    _, X_test2, _, y_test2 = split(shuffled, contract)
    assert X_test.equals(X_test2) and y_test.equals(y_test2)
    assert 80 <= len(X_test) <= 120  # about a quarter of the keys


def test_a_key_stays_where_it_is_as_gold_grows():
    """The holdout depends on the key alone: more rows, other labels or another seed move no key."""
    contract, small, big = tiny_contract(), _gold(400), _gold(1200, seed=5)

    def held(g):
        return set(g.loc[in_holdout(g["ref"]), "ref"])

    assert held(small) == held(big) & set(small["ref"]) and held(small)
    X_train, X_test, _, _ = split(big, contract)
    keys = labelled(big, contract)["ref"]
    assert not set(keys[X_train.index]) & held(small)  # no training row of a bigger Gold is a held-out key
    # An integer key is one key whether read as 42, 42.0 or "42" (a contract's int key, a CSV's text).
    assert len({bool(in_holdout(pd.Series([k]))[0]) for k in (42, 42.0, "42", np.int64(42))}) == 1
    assert in_holdout(pd.Series(range(4000))).mean() == pytest.approx(0.25, abs=0.02)


def test_split_drops_rows_without_a_label():
    contract, gold = tiny_contract(), _gold(400)
    gold.loc[:99, "left"] = None
    X_train, X_test, _, _ = split(gold, contract)
    assert len(X_train) + len(X_test) == 300


def test_comparison_cross_validates_every_candidate_and_names_the_best():
    contract, gold = tiny_contract(), _gold(300)
    X_train, _, y_train, _ = split(gold, contract)
    winner, rows = compare(contract, X_train, y_train, seed=1, folds=3)
    assert [r["model"] for r in rows] == list(candidates(1)) == ["logistic_regression", "gradient_boosting"]
    assert all(0.5 < r["cv_roc_auc_mean"] <= 1.0 and r["folds"] == 3 for r in rows)
    best = max(rows, key=lambda r: r["cv_roc_auc_mean"])
    assert winner == best["model"] and [r["winner"] for r in rows] == [r is best for r in rows]


def test_positive_scores_need_class_probabilities():
    assert positive_scores(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist() == [0.8, 0.1]
    with pytest.raises(ValueError, match="shape"):
        positive_scores(np.array([1, 0, 1]))  # labels, not probabilities


@pytest.mark.parametrize(
    ("auc", "rows", "classes", "champion", "promote", "outcome", "words"),
    [
        (0.9, 199, 2, Champion(), False, "not_promoted", "only 199 held-out rows"),
        (0.9, 500, 1, Champion(), False, "not_promoted", "single class"),
        (0.6, 500, 2, Champion(), True, "promoted", "no champion yet"),
        (
            0.6,
            500,
            2,
            Champion("3", cannot_score="it needs ['x']"),
            True,
            "promoted",
            "v3 cannot score the current features",
        ),
        (
            0.6,
            500,
            2,
            Champion("3", not_held_out="it records no holdout"),
            True,
            "promoted",
            "v3 cannot be compared on rows it never trained on",
        ),
        (
            0.81,
            500,
            2,
            Champion("3", roc_auc=0.80),
            True,
            "promoted",
            "beats champion v3's 0.8000 on the same 500 held-out rows",
        ),
        (0.79, 500, 2, Champion("3", roc_auc=0.80), False, "kept", "champion v3 keeps the alias"),
        (0.80, 500, 2, Champion("3", roc_auc=0.80), False, "kept", "a tie keeps the champion"),
        (0.99, 150, 2, Champion("3", roc_auc=0.50), False, "not_promoted", "only 150 held-out rows"),
    ],
    ids=[
        "few-rows",
        "one-class",
        "first",
        "cannot-score",
        "not-held-out",
        "better",
        "worse",
        "tie",
        "better-but-few-rows",
    ],
)
def test_champion_rule(auc, rows, classes, champion, promote, outcome, words):
    d = decide(auc, rows, classes, 200, champion)
    assert (d.promote, d.outcome) == (promote, outcome)
    assert words in d.reason


def test_too_few_rows_of_a_class_are_named_with_the_counts():
    from training.train import too_few

    contract, y_test = tiny_contract(), pd.Series([0, 1, 1])
    reason = too_few("S1", contract, pd.Series([0] * 90 + [1] * 2), y_test)
    assert "hold 90 negative and 2 positive (left = 'Yes'), and the held-out rows 1 and 2" in reason
    assert too_few("S1", contract, pd.Series([0] * 90 + [1] * 3), y_test) is None


def test_the_fewest_rows_allowed_are_enough_to_compare_and_fit_both_candidates():
    """Three rows of a class among the training rows: three folds, each trains on two of them (the
    boosted tree's early stopping splits those once more)."""
    contract, gold = tiny_contract(), _gold(120)
    train = ~in_holdout(gold["ref"])
    gold["left"] = 0
    gold.loc[train, "left"] = (np.arange(train.sum()) < 3).astype(int)
    X_train, _, y_train, _ = split(gold, contract)
    folds = min(CV_FOLDS, int(y_train.value_counts().min()))
    winner, rows = compare(contract, X_train, y_train, seed=1, folds=folds)
    assert folds == 3 and all(r["folds"] == 3 and np.isfinite(r["cv_roc_auc_mean"]) for r in rows)
    for name in candidates(1):
        build_pipeline(contract, candidates(1)[name]).fit(X_train, y_train)
