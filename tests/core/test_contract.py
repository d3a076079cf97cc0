"""The contract drives Silver's schema, the quarantine rules and the GX suites (the suites' own tests:
tests/validation/test_suite.py)."""

import re

import pandas as pd
import pytest

from mdp.core.contract import Contract, anchored, incompatibilities, load_contract, parse_contract, schema_of
from mdp.core.errors import ConfigError
from validation.suite import changes_suite

pytestmark = pytest.mark.unit


def test_rules_cover_every_constraint_in_the_contract():
    c = load_contract()
    codes = {r.code for r in c.rules()}
    for col in c.columns:
        assert (f"missing:{col.name}" in codes) == (not col.nullable)
        assert (f"bad_format:{col.name}" in codes) == bool(col.regex)
        assert (f"bad_value:{col.name}" in codes) == bool(col.allowed)
        assert (f"out_of_range:{col.name}" in codes) == (col.min is not None or col.max is not None)


def test_a_new_contract_column_flows_into_suite_and_schema():
    from spark_apps.transforms import spark_schema

    data = load_contract().model_dump()
    data["columns"].append({"name": "referral_code", "type": "string", "nullable": False, "regex": "^R[0-9]{4}$"})
    c = Contract.model_validate(data)
    assert "referral_code" in spark_schema(c).fieldNames()
    assert spark_schema(c)["referral_code"].nullable is False
    cols = {(type(e).__name__, getattr(e, "column", None)) for e in changes_suite(c).expectations}
    assert ("ExpectColumnValuesToMatchRegex", "referral_code") in cols
    assert ("ExpectColumnValuesToNotBeNull", "referral_code") in cols


def test_silver_schema_types_follow_the_contract():
    from spark_apps.transforms import spark_schema

    c = load_contract()
    schema = spark_schema(c)
    assert schema.fieldNames() == c.names
    assert schema["age"].dataType.simpleString() == "int"
    assert schema["event_ts"].dataType.simpleString() == "timestamp"
    assert schema["customer_id"].nullable is False


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"primary_key": "nope"}, "primary_key"),
        ({"label": {"column": "churned", "positive": "yes"}}, "label.positive"),
        ({"max_bad_fraction": 0.1}, "max_bad_fraction"),
        ({"quality": {"max_quarantined": 2}}, "quality.max_quarantined"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_contract_fails_on_load_naming_the_key(change, key):
    data = {**load_contract().model_dump(), **change}
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_contract(data, "test")


def test_contract_evolution_adding_a_nullable_column_is_compatible_and_the_rest_is_named():
    c = load_contract()
    published = schema_of(c)
    data = c.model_dump()
    data["columns"].append({"name": "referral_code", "type": "string"})
    assert incompatibilities(Contract.model_validate(data), published) == []
    data["columns"][-1]["nullable"] = False
    hint = "; `mdp run --all` rebuilds Silver from Bronze under the new contract"
    assert [
        "columns.referral_code: a new column must be nullable (published rows have no value for it)" + hint
    ] == incompatibilities(Contract.model_validate(data), published)
    assert incompatibilities(Contract.model_validate(data), published, rebuild=True) == []  # no old row is kept
    data = c.model_dump()
    next(x for x in data["columns"] if x["name"] == "age")["type"] = "double"
    assert incompatibilities(Contract.model_validate(data), published) == [
        "columns.age: type changed from int to double"
    ]


def test_contract_evolution_a_drop_is_named_unless_unknown_fields_are_ignored_and_a_rename_always():
    """Issue 20 item 5: a rename passed as 'drop one, add one nullable'."""
    c = load_contract()
    published = schema_of(c)
    data = c.model_dump()
    data["columns"] = [x for x in data["columns"] if x["name"] != "phone"]
    data["derived"] = [d for d in data["derived"] if d["column"] != "phone"]
    dropped = Contract.model_validate(data)
    assert incompatibilities(dropped, published) == [
        "columns.phone: dropped, but messages that still carry it would be quarantined as unknown_field (and stop the "
        "gate at quality.max_unknown_fields); keep it declared (feature: excluded stops the model using it), or set "
        "unknown_fields: ignore"
    ]
    assert incompatibilities(Contract.model_validate({**data, "unknown_fields": "ignore"}), published) == []
    data["columns"] += [{"name": "mobile", "type": "string"}, {"name": "landline", "type": "string"}]
    for unknown in ("quarantine", "ignore"):
        assert incompatibilities(Contract.model_validate({**data, "unknown_fields": unknown}), published) == [
            "columns.phone: dropped while landline, mobile (string) was added: a rename is not compatible (published "
            "rows would read NULL under the new name); keep phone declared (feature: excluded stops the model using it) "
            "beside the new column"
        ]
    data["columns"] = data["columns"][:-1]
    data["columns"][-1]["type"] = "int"  # another type: not a rename, a drop and an add
    assert incompatibilities(Contract.model_validate({**data, "unknown_fields": "ignore"}), published) == []


@pytest.mark.parametrize(
    "value", ["C0000001", "C0000001\n", "C0000001\r", "C0000001\u2028", "C0000001\u0085", "xC0000001"]
)
def test_spark_and_gx_agree_on_full_match(spark, value):
    """The same contract regex, anchored per engine, gives the same verdict in Java (Spark) and Python (GX)."""
    from pyspark.sql import functions as F

    regex = load_contract().column("customer_id").regex
    java = spark.createDataFrame([(value,)], "v string").select(F.col("v").rlike(anchored(regex, "java"))).first()[0]
    python = bool(pd.Series([value]).str.contains(anchored(regex, "python"), regex=True)[0])
    assert java == python == (value == "C0000001")


# ---- fast checks (no Spark): `make mutation` runs these against mutants of mdp/core/contract.py ----


@pytest.mark.parametrize(
    ("regex", "value", "full"),
    [
        (r"^C[0-9]{7}$", "C0000001", True),
        (r"^C[0-9]{7}$", "C0000001\n", False),  # a bare $ in Python matches before a final \n
        (r"^C[0-9]{7}$", "C0000001\u2028", False),
        (r"^C[0-9]{7}$", "xC0000001", False),
        (r"a|b", "b", True),
        (r"a|b", "xb", False),  # the alternation is grouped before it is anchored
        (r"a|b", "ax", False),
        (r"[0-9]+", "12 ", False),  # a contract regex without anchors still means the whole value
    ],
)
def test_anchored_means_full_match_in_python_and_re2(regex, value, full):
    import duckdb

    python = re.search(anchored(regex, "python"), value) is not None
    re2 = duckdb.execute("SELECT regexp_matches(?, ?)", [value, anchored(regex, "re2")]).fetchone()[0]
    assert python == re2 == full


def test_every_column_has_a_type_rule_and_rules_come_in_evaluation_order():
    """Text has a type rule too: a value holding U+0000 does not cast (no SQL text type holds it)."""
    c = load_contract()
    typed = [r for r in c.rules() if r.kind == "type"]
    assert [r.column for r in typed] == c.names
    assert all(r.code == f"bad_type:{r.column}" for r in typed)
    # Per column: missing, then type, then the value rules; the first failing one is the primary reason.
    assert [r.code for r in c.rules() if r.column == "signup_date"] == [
        "missing:signup_date",
        "bad_type:signup_date",
        "out_of_range:signup_date",
        "future:signup_date",
    ]
    assert [r.code for r in c.rules() if r.column == "email"] == ["missing:email", "bad_type:email", "bad_format:email"]
    assert [r.code for r in c.rules() if r.column == "plan"] == ["missing:plan", "bad_type:plan", "bad_value:plan"]


def test_feature_roles_follow_the_contract():
    c = load_contract()
    roles = {x.name: c.feature_role(x) for x in c.columns}
    assert roles["customer_id"] == "identifier"
    assert roles["churned"] == "excluded"  # the label is never a feature
    assert {roles[n] for n in (c.event_id, c.event_time, "event_type")} == {"excluded"}  # the envelope
    assert roles["age"] == roles["monthly_spend"] == roles["support_tickets"] == "numeric"
    assert roles["plan"] == roles["country"] == "categorical"  # strings with an allowed set
    assert roles["full_name"] == roles["email"] == roles["signup_date"] == "excluded"
    assert [n for n, role, _ in c.features() if role == "boolean"] == ["has_phone"]  # stated on the derived feature
    data = c.model_dump()
    data["columns"] += [
        {"name": "vip", "type": "boolean"},
        {"name": "segment", "type": "string", "feature": "categorical"},
    ]
    more = Contract.model_validate(data)
    assert more.feature_role(more.column("vip")) == "boolean"  # a boolean column that is not the label
    assert more.feature_role(more.column("segment")) == "categorical"  # stated, though it has no allowed set


def test_an_unknown_column_is_named():
    with pytest.raises(KeyError, match="no column 'nope'"):
        load_contract().column("nope")


def test_contract_paths_by_name_or_file():
    from pathlib import Path

    from mdp.core.contract import CONTRACTS_DIR, contract_path

    assert contract_path("customers") == CONTRACTS_DIR / "customers.yaml"
    assert contract_path("mine.yaml") == Path("mine.yaml") and contract_path("mine.yml") == Path("mine.yml")
    assert contract_path("contracts/mine") == Path("contracts/mine")


def test_every_incompatible_change_is_named():
    c = load_contract()
    published = schema_of(c)
    assert published["version"] == c.version and published["columns"]["age"] == {"type": "int", "nullable": False}
    data = c.model_dump()
    data["primary_key"], data["event_id"] = "email", "customer_id"
    next(x for x in data["columns"] if x["name"] == "phone")["nullable"] = False
    assert incompatibilities(Contract.model_validate(data), published) == [
        "primary_key: was 'customer_id', now 'email'",
        "event_id: was 'event_id', now 'customer_id'",
        "columns.phone: became non-nullable; published rows may hold nulls; `mdp run --all` rebuilds Silver from Bronze "
        "under the new contract",
    ]
    assert incompatibilities(c, None) == []
    # A manifest from before columns were recorded: every non-nullable column is new to it.
    assert len(incompatibilities(c, {"primary_key": c.primary_key, "event_id": c.event_id})) == sum(
        not x.nullable for x in c.columns
    )


def test_a_bad_contract_names_every_failing_key():
    data = {**load_contract().model_dump(), "colour": "blue", "flavour": "mint"}
    with pytest.raises(ConfigError) as err:
        parse_contract(data, "mine.yaml")
    assert (
        str(err.value)
        == "contract mine.yaml: colour: Extra inputs are not permitted; flavour: Extra inputs are not permitted"
    )


def test_regex_problem_names_the_engine_that_refuses():
    from mdp.core.contract import regex_problem

    assert regex_problem(r"^[a-z]+$") is None
    assert regex_problem(r"^[a-z+$").startswith("Python's re (the gate's GX suite) refuses")
    assert regex_problem(r"^(?P<first>[a-z]+)$").startswith("Java's regex (Spark, bronze_to_silver) refuses")
    assert regex_problem(r"^\(?P<first>\)$") is None  # escaped parentheses are literals, not a group
    assert regex_problem(r"^a\\(?P<first>b)$").startswith("Java's regex")  # an escaped backslash, then a group
