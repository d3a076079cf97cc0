"""`mdp contract infer`: a draft contract from a sample (mdp/core/contract_infer.py, pure)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import yaml

from ingestion.examples import subscribers_rows, to_csv
from ingestion.file_source import parse_csv
from mdp.core.contract import load_contract, parse_contract
from mdp.core.contract_infer import infer_contract, profile_column, render_yaml
from mdp.core.errors import ConfigError

pytestmark = pytest.mark.unit


def _columns(text: str) -> dict[str, list[str]]:
    header, rows, bad = parse_csv(text)
    assert not bad
    return {c: [r[i] for r in rows] for i, c in enumerate(header)}


def _spec(name, values, hint=None):
    return profile_column(name, values, hint).spec


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "2", "-3"], "int"),
        (["1", "2.5", "1e3"], "double"),
        (["1", "", "  ", "3"], "int"),  # blanks do not count against a type
        (["70.35", "", "12"], "double"),
        (["3000000000", "1"], "double"),  # beyond 32 bits
        (["true", "False", ""], "boolean"),
        (["Yes", "No"], "string"),  # Yes/No stays a string label, not a boolean
        (["2024-01-31", "2023-12-01"], "date"),
        (["2024-01-31T10:00:00Z", "2024-01-31 11:00:00.5"], "timestamp"),
        (["2024-01-31", "2024-01-31T10:00:00+02:00"], "timestamp"),
        (["2024-02-30"], "string"),  # not a real date
        (["007", "012"], "string"),  # leading zeros are a code, not a number
        (["1", "x"], "string"),
        (["", ""], "string"),
    ],
)
def test_types_from_texts(values, expected):
    assert _spec("c", values)["type"] == expected


def test_types_from_parquet_values():
    assert _spec("a", [1, None, 3])["type"] == "int"
    assert _spec("b", [1.5, float("nan"), None])["type"] == "double"
    assert _spec("c", [True, False])["type"] == "boolean"
    assert _spec("d", [date(2024, 1, 1)])["type"] == "date"
    assert _spec("e", [datetime(2024, 1, 1, 3)])["type"] == "timestamp"
    assert _spec("f", [2**40, 1])["type"] == "double"
    assert _spec("big_id", [2**40, 1], "key")["type"] == "string"  # a 64-bit key keeps its digits


def test_numeric_with_blanks_is_numeric_nullable_with_its_observed_range():
    s = _spec("monthly_charges", ["70.35", "", "12", " "])
    assert s == {
        "name": "monthly_charges",
        "type": "double",
        "nullable": True,
        "min": 12,
        "max": 70.35,
        "feature": "numeric",
    }
    assert _spec("n", ["1", "2"])["nullable"] is False


def test_low_cardinality_strings_get_an_allowed_set_and_normalisers():
    s = _spec("plan", [" pro", "Pro", "free", "FREE ", "free", "pro"])
    assert s["normalise"] == ["trim", "lower"]
    assert s["allowed"] == ["free", "pro"] and s["feature"] == "categorical"
    upper = _spec("cc", ["US", "us", "DE", "DE", "US", "DE"])
    assert upper["normalise"] == ["upper"] and upper["allowed"] == ["DE", "US"]
    free_text = _spec("email", [f"u{i}@x.org" for i in range(30)])
    assert "allowed" not in free_text and free_text["feature"] == "excluded"
    too_many = _spec("city", [f"c{i % 25}" for i in range(100)])
    assert "allowed" not in too_many


def test_roles():
    assert _spec("flag", ["0", "1", "1"])["feature"] == "numeric"
    assert _spec("opted_in", ["true", "false"])["feature"] == "boolean"
    assert _spec("signup", ["2024-01-01", "2024-02-01"])["feature"] == "excluded"
    assert _spec("partner_id", ["a1", "a2", "a3"])["feature"] == "identifier"
    assert _spec("k", ["1", "2"], "key") == {"name": "k", "type": "int", "nullable": False, "feature": "identifier"}


SAMPLE = """id,plan,spend,joined,active,churn
1,pro,10.5,2024-01-01,true,Yes
2,free,,2024-02-01,false,No
3,pro,7,2024-03-01,true,No
4,free,3.25,2024-03-05,false,Yes
"""


def test_draft_has_the_envelope_label_and_derived_features():
    d = infer_contract(_columns(SAMPLE), "accounts", "id", "churn").contract
    assert d["entity"] == "accounts" and d["primary_key"] == "id" and d["event_id"] == "event_id"
    assert "event_time" not in d  # arrival order
    assert d["label"] == {"column": "churn", "positive": "Yes"}
    assert d["columns"][0] == {"name": "event_id", "type": "string", "nullable": False}
    assert d["derived"] == [{"name": "days_since_joined", "kind": "days_since", "column": "joined"}]
    c = parse_contract(d)
    assert c.features_by_role("numeric") == ["spend", "days_since_joined"]
    assert c.features_by_role("categorical") == ["plan"] and c.features_by_role("boolean") == ["active"]
    assert c.column("spend").nullable and not c.column("plan").nullable


def test_event_time_when_named():
    d = infer_contract(_columns(SAMPLE), "accounts", "id", "churn", event_time="joined").contract
    assert d["event_time"] == "joined" and "derived" not in d
    joined = next(c for c in d["columns"] if c["name"] == "joined")
    assert joined["nullable"] is False and joined["not_future"] is True
    with pytest.raises(ConfigError, match="--event-time: column 'plan' reads as string"):
        infer_contract(_columns(SAMPLE), "accounts", "id", "churn", event_time="plan")


@pytest.mark.parametrize(
    ("label_values", "given", "expected"),
    [
        (["Yes", "No", "No"], None, "Yes"),
        ([" yes", "No", "NO"], None, "yes"),  # after its normalisers (trim, lower)
        (["Churned", "Stayed"], "Churned", "Churned"),
        (["true", "false"], None, True),
        (["true", "false"], "false", False),
        (["0", "1", "1"], None, 1),
        (["0", "2"], "2", 2),
    ],
)
def test_label_positive_value(label_values, given, expected):
    cols = {"id": [str(i) for i in range(len(label_values))], "y": label_values}
    d = infer_contract(cols, "t", "id", "y", positive=given).contract
    assert d["label"]["positive"] == expected and type(d["label"]["positive"]) is type(expected)
    parse_contract(d)  # the positive value fits the label's type


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "nope"}, "--key: no column 'nope'"),
        ({"label": "nope"}, "--label: no column 'nope'"),
        ({"label": "id"}, "--label: the label cannot be the key"),
        ({"entity": "My Table"}, "--entity: 'My Table'"),
        ({"positive": "Maybe"}, "--positive: 'Maybe' is not one of label column 'churn'"),
        ({"label": "plan"}, "--positive: required for label column 'plan'"),
        ({"label": "spend"}, "--label: column 'spend' reads as double"),
    ],
)
def test_bad_options_name_the_option(kwargs, message):
    args = {"entity": "accounts", "key": "id", "label": "churn", **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        infer_contract(_columns(SAMPLE), **args)


def test_yaml_round_trips_and_loads(tmp_path):
    draft = infer_contract(_columns(SAMPLE), "accounts", "id", "churn")
    text = render_yaml(draft)
    assert yaml.safe_load(text) == draft.contract  # comments carry the evidence; the data is the draft
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    loaded = load_contract(str(path))
    assert loaded == parse_contract(draft.contract)
    assert "# 1 blank of 4" in text  # the evidence per column


def test_yaml_quotes_values_yaml_would_misread(tmp_path):
    cols = {
        "id": [str(i) for i in range(8)],
        "answer": ["No", "Yes", "on", "off"] * 2,
        "y": ["Yes", "No", "No", "Yes"] * 2,
    }
    draft = infer_contract(cols, "t", "id", "y")
    loaded = yaml.safe_load(render_yaml(draft))
    assert loaded["label"]["positive"] == "Yes"
    assert next(c for c in loaded["columns"] if c["name"] == "answer")["allowed"] == ["No", "Yes", "off", "on"]


def test_the_example_draft_matches_its_curated_contract():
    """The draft of the bundled example agrees with the hand-curated contract on what matters to
    Silver and the model: every column's type and feature role, the key, the label and its value."""
    draft = infer_contract(_columns(to_csv(subscribers_rows(3000, seed=3))), "subscribers", "account_no", "churn")
    inferred = parse_contract(draft.contract)
    curated = load_contract("subscribers")
    assert inferred.names == curated.names
    for c in curated.columns:
        got = inferred.column(c.name)
        assert (got.type, inferred.feature_role(got)) == (c.type, curated.feature_role(c)), c.name
    assert (inferred.primary_key, inferred.event_id, inferred.event_time) == ("account_no", "event_id", None)
    assert inferred.label == curated.label
    # The blank numeric columns are nullable in both; the complete ones required in both.
    assert {c.name for c in inferred.columns if c.nullable} == {"monthly_charges", "total_charges"}
    assert {c.name for c in curated.columns if c.nullable} == {"monthly_charges", "total_charges", "email"}
