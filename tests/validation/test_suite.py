"""The gate's GX suites follow the contract (validation/suite.py): the changes suite is strict, the
batch suite enforces each quality threshold by name (as counts under `min_batch_rows`), drift
follows the published profile, the table suite checks whole-table facts."""

import pytest

from mdp.core.contract import Contract, load_contract
from validation.suite import batch_suite, changes_suite, share_check, table_suite

pytestmark = pytest.mark.unit


def _by_type(suite):
    out = {}
    for e in suite.expectations:
        out.setdefault(type(e).__name__, set()).add(getattr(e, "column", None))
    return out


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
    check = share_check(load_contract(), "max_per_rule", rows)  # 10%, min_batch_rows 200
    assert ((rows - bad) / rows >= check["mostly"]) is passes
    assert ("small_batch" in check["meta"]) is (rows < 200)


def test_zero_tolerance_stays_strict_in_a_small_batch():
    data = load_contract().model_dump()
    data["quality"]["max_per_rule"] = 0
    assert share_check(Contract.model_validate(data), "max_per_rule", 5)["mostly"] == 1.0
