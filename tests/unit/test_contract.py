"""The contract drives Silver's schema, the quarantine rules and the GX suites."""

import pytest

from mdp.core.contract import Contract, load_contract
from validation.suite import batch_suite, silver_suite

pytestmark = pytest.mark.unit


def _kinds(suite):
    return [(e.expectation_type if hasattr(e, "expectation_type") else type(e).__name__, getattr(e, "column", None)) for e in suite.expectations]


def test_rules_cover_every_constraint_in_the_contract():
    c = load_contract()
    codes = {r.code for r in c.rules()}
    for col in c.columns:
        assert (f"missing:{col.name}" in codes) == (not col.nullable)
        assert (f"bad_format:{col.name}" in codes) == bool(col.regex)
        assert (f"bad_value:{col.name}" in codes) == bool(col.allowed)
        assert (f"out_of_range:{col.name}" in codes) == (col.min is not None or col.max is not None)


def test_gx_suite_is_derived_from_the_contract():
    c = load_contract()
    suite = silver_suite(c)
    by_type = {}
    for e in suite.expectations:
        by_type.setdefault(type(e).__name__, set()).add(getattr(e, "column", None))
    assert by_type["ExpectColumnToExist"] == set(c.names)
    assert by_type["ExpectColumnValuesToNotBeNull"] == {x.name for x in c.columns if not x.nullable}
    assert by_type["ExpectColumnValuesToMatchRegex"] == {x.name for x in c.columns if x.regex}
    assert by_type["ExpectColumnValuesToBeInSet"] == {x.name for x in c.columns if x.allowed}
    ranged = {x.name for x in c.columns if x.min is not None or x.max is not None or x.not_future}
    assert by_type["ExpectColumnValuesToBeBetween"] == ranged
    assert by_type["ExpectColumnValuesToBeUnique"] == {c.primary_key}
    assert all(getattr(e, "mostly", 1.0) == 1.0 for e in suite.expectations)


def test_batch_suite_tolerates_the_contract_share_of_bad_rows():
    c = load_contract()
    suite = batch_suite(c)
    mostlies = {getattr(e, "mostly", None) for e in suite.expectations if hasattr(e, "mostly")}
    assert mostlies == {round(1 - c.quality.max_per_rule, 6)}
    assert {getattr(e, "column", None) for e in suite.expectations if type(e).__name__ == "ExpectColumnValuesToBeUnique"} == {c.event_id}


def test_a_new_contract_column_flows_into_suite_and_schema():
    from spark_apps.transforms import spark_schema

    data = load_contract().model_dump()
    data["columns"].append({"name": "referral_code", "type": "string", "nullable": False, "regex": "^R[0-9]{4}$"})
    c = Contract.model_validate(data)
    assert "referral_code" in spark_schema(c).fieldNames()
    assert spark_schema(c)["referral_code"].nullable is False
    cols = {(type(e).__name__, getattr(e, "column", None)) for e in silver_suite(c).expectations}
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


def test_contract_rejects_undeclared_keys():
    data = load_contract().model_dump()
    data["primary_key"] = "nope"
    with pytest.raises(ValueError, match="nope"):
        Contract.model_validate(data)
