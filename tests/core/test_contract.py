"""The contract drives Silver's schema, the quarantine rules, the GX suites and the gate's thresholds."""

import re

import pandas as pd
import pytest

from mdp.core.contract import Contract, anchored, incompatibilities, load_contract, parse_contract, schema_of
from mdp.core.errors import ConfigError
from validation.suite import batch_suite, changes_suite, table_suite

pytestmark = pytest.mark.unit


def _by_type(suite):
    out = {}
    for e in suite.expectations:
        out.setdefault(type(e).__name__, set()).add(getattr(e, "column", None))
    return out


def test_rules_cover_every_constraint_in_the_contract():
    c = load_contract()
    codes = {r.code for r in c.rules()}
    for col in c.columns:
        assert (f"missing:{col.name}" in codes) == (not col.nullable)
        assert (f"bad_format:{col.name}" in codes) == bool(col.regex)
        assert (f"bad_value:{col.name}" in codes) == bool(col.allowed)
        assert (f"out_of_range:{col.name}" in codes) == (col.min is not None or col.max is not None)


def test_changes_suite_is_strict_and_derived_from_the_contract():
    c = load_contract()
    by_type = _by_type(changes_suite(c))
    assert by_type["ExpectColumnToExist"] == set(c.names)
    assert by_type["ExpectColumnValuesToNotBeNull"] == {x.name for x in c.columns if not x.nullable}
    assert by_type["ExpectColumnValuesToMatchRegex"] == {x.name for x in c.columns if x.regex}
    assert by_type["ExpectColumnValuesToBeInSet"] == {x.name for x in c.columns if x.allowed}
    assert by_type["ExpectColumnValuesToBeBetween"] == {
        x.name for x in c.columns if x.min is not None or x.max is not None
    }
    # "Not future": each value against its row's ingest time + skew, a column the gate adds to the frame.
    future = [e for e in changes_suite(c).expectations if type(e).__name__ == "ExpectColumnPairValuesAToBeGreaterThanB"]
    assert {(e.column_B, e.column_A) for e in future} == {
        (x.name, "_future_limit_date" if x.type == "date" else "_future_limit") for x in c.columns if x.not_future
    }
    assert by_type["ExpectColumnValuesToBeUnique"] == {c.primary_key}
    assert all(getattr(e, "mostly", 1.0) == 1.0 for e in changes_suite(c).expectations)


def test_batch_suite_enforces_each_quality_threshold_by_name():
    c = load_contract()
    suite = batch_suite(c)
    thresholds = {(e.meta or {}).get("threshold") for e in suite.expectations} - {None}
    assert thresholds == {
        "quality.max_quarantined",
        "quality.max_unparseable",
        "quality.max_unknown_fields",
        "quality.max_bad_type",
        "quality.max_per_rule",
        "quality.max_conflicting_duplicates",
    }
    for e in suite.expectations:
        meta = e.meta or {}
        if "limit" in meta and hasattr(e, "mostly"):
            assert e.mostly == round(1 - meta["limit"], 6)
    # Uniqueness is about one event id with two contents (exact copies are gone before the gate),
    # never about the primary key: a batch holds many events per customer.
    assert _by_type(suite)["ExpectColumnValuesToBeUnique"] == {c.event_id}


def test_a_zero_tolerance_contract_still_accepts_a_clean_batch():
    data = load_contract().model_dump()
    data["quality"] = {
        k: 0
        for k in (
            "max_quarantined",
            "max_unparseable",
            "max_unknown_fields",
            "max_bad_type",
            "max_per_rule",
            "max_conflicting_duplicates",
        )
    }
    c = Contract.model_validate(data)
    assert _by_type(batch_suite(c))["ExpectColumnValuesToBeUnique"] == {c.event_id}
    assert all(getattr(e, "mostly", 1.0) == 1.0 for e in batch_suite(c).expectations)


def test_drift_checks_follow_the_published_profile():
    c = load_contract()
    profile = {"rows": 5000, "keys": 5000, "columns": {n: {"nulls": 0, "distinct": 4000} for n in c.names}}

    def drift_of(**kw):
        return [
            e
            for e in batch_suite(c, profile, **kw).expectations
            if (e.meta or {}).get("threshold", "").startswith("quality.drift")
        ]

    drift = drift_of(accepted_rows=2000)
    assert {e.column for e in drift if type(e).__name__ == "ExpectColumnValuesToNotBeNull"} == {
        x.name for x in c.columns if x.nullable
    }
    # Distinct values: only free-text columns other than the key, per key (Silver holds one row per
    # key); a number, a date or an enumeration may concentrate in a legitimate batch.
    distinct = {e.column: e.min_value for e in drift if type(e).__name__ == "ExpectColumnUniqueValueCountToBeBetween"}
    assert set(distinct) == {x.name for x in c.columns if x.type == "string" and not x.allowed} - {c.primary_key}
    assert distinct["email"] == int(c.quality.drift.min_distinct_ratio * 4000 / 5000 * 2000)
    # A day's catch-up: 100 events per key. The bound follows the batch's keys, not its events.
    catch_up = {
        e.column: e.min_value
        for e in drift_of(accepted_rows=200_000, accepted_keys=2000)
        if type(e).__name__ == "ExpectColumnUniqueValueCountToBeBetween"
    }
    assert catch_up == distinct
    small = [
        e
        for e in batch_suite(c, profile, accepted_rows=10).expectations
        if (e.meta or {}).get("threshold", "").startswith("quality.drift")
    ]
    assert small == []  # below drift.min_rows the signal is noise


def test_table_suite_checks_whole_table_facts():
    by_type = _by_type(table_suite(load_contract()))
    assert "ExpectColumnPairValuesToBeEqual" in by_type and by_type["ExpectColumnValuesToBeBetween"] == {"rows"}


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


@pytest.mark.parametrize(
    "rows, bad, passes",
    [
        (5, 1, True),
        (5, 3, True),
        (5, 5, True),  # under min_batch_rows: a count (20 rows), whatever the share
        (1, 1, True),  # one bad record alone (a late record in its hour) is one record, not a broken producer
        (30, 20, True),
        (30, 21, False),
        (100, 20, True),
        (100, 21, False),  # the cap: what 10% allows in a batch of 200
        (200, 20, True),
        (200, 21, False),
        (1000, 100, True),
        (1000, 101, False),  # from 200 rows on: the share
    ],
)
def test_a_share_under_min_batch_rows_becomes_a_count(rows, bad, passes):
    from validation.suite import share_check

    check = share_check(load_contract(), "max_per_rule", rows)  # 10%, min_batch_rows 200
    assert ((rows - bad) / rows >= check["mostly"]) is passes
    assert ("small_batch" in check["meta"]) is (rows < 200)


def test_zero_tolerance_stays_strict_in_a_small_batch():
    from validation.suite import share_check

    data = load_contract().model_dump()
    data["quality"]["max_per_rule"] = 0
    assert share_check(Contract.model_validate(data), "max_per_rule", 5)["mostly"] == 1.0


def test_regex_problem_names_the_engine_that_refuses():
    from mdp.core.contract import regex_problem

    assert regex_problem(r"^[a-z]+$") is None
    assert regex_problem(r"^[a-z+$").startswith("Python's re (the gate's GX suite) refuses")
    assert regex_problem(r"^(?P<first>[a-z]+)$").startswith("Java's regex (Spark, bronze_to_silver) refuses")
    assert regex_problem(r"^\(?P<first>\)$") is None  # escaped parentheses are literals, not a group
    assert regex_problem(r"^a\\(?P<first>b)$").startswith("Java's regex")  # an escaped backslash, then a group
