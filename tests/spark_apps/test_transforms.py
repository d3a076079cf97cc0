"""Each pure transform on tiny frames, with the shared Spark session."""

import json
from datetime import UTC, datetime

import pytest

from mdp.core.contract import load_contract
from spark_apps.bronze_to_silver import bronze_spark_schema
from spark_apps.features import build_features
from spark_apps.transforms import (
    content_checksum,
    distinct_deliveries,
    latest_state,
    merge_quarantine,
    parse_events,
    silver_schema,
    to_silver_rows,
)

pytestmark = pytest.mark.unit
C = load_contract()
INGEST = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)


def event(**over):
    base = {
        "event_id": "0b7e6a4e-0000-4000-8000-000000000001",
        "event_type": "customer_created",
        "event_ts": "2026-01-10T12:00:00Z",
        "customer_id": "C0000001",
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+44 207 1234567",
        "country": "GB",
        "age": 36,
        "plan": "pro",
        "signup_date": "2025-01-01",
        "monthly_spend": 59.5,
        "support_tickets": 1,
        "last_login_date": "2026-01-09",
        "churned": False,
    }
    base.update(over)
    return base


def bronze(spark, messages, offsets=None, ingest=None):
    rows = []
    for i, m in enumerate(messages):
        raw = m if isinstance(m, (str, bytes)) else json.dumps({k: v for k, v in m.items() if v is not ...})
        raw = raw if isinstance(raw, bytes) else raw.encode()
        off = offsets[i] if offsets else i
        rows.append((raw, b"k", "test", "customers", 0, off, ingest or INGEST, "2026-01-10", "12"))
    return spark.createDataFrame(rows, bronze_spark_schema())


def reasons_of(spark, messages):
    return [r["_reasons"] for r in parse_events(bronze(spark, messages), C).orderBy("offset").collect()]


def test_clean_event_passes_and_is_normalised(spark):
    row = parse_events(bronze(spark, [event(email="  Ada@Example.COM ", country=" gb", plan=" Pro")]), C).first()
    assert row["_reasons"] == []
    assert (row["email"], row["country"], row["plan"]) == ("ada@example.com", "GB", "pro")
    assert row["age"] == 36 and isinstance(row["event_ts"], datetime)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{not json", "unparseable_json"),
        ('{"event_id": "x"', "unparseable_json"),
        ("[1, 2]", "unparseable_json"),
        ("", "unparseable_json"),
        (event(loyalty="gold"), "unknown_field"),
        (event(customer_id=None), "missing:customer_id"),
        (event(email=...), "missing:email"),
        (event(email="ada at example.com"), "bad_format:email"),
        (event(age="forty"), "bad_type:age"),
        (event(age=130), "out_of_range:age"),
        (event(plan="platinum"), "bad_value:plan"),
        (event(country="XX"), "bad_value:country"),
        (event(event_ts="2030-01-01T00:00:00Z"), "future:event_ts"),
        (event(signup_date="1999-12-31"), "out_of_range:signup_date"),
        (event(churned="maybe"), "bad_type:churned"),
    ],
)
def test_each_contract_rule_has_a_reason_code(spark, message, reason):
    (reasons,) = reasons_of(spark, [message])
    assert reason in reasons


def test_first_failing_rule_is_the_primary_reason(spark):
    # Rules run in contract order: email's rules come before age's.
    (reasons,) = reasons_of(spark, [event(email="not an email", age=7)])
    assert reasons == ["bad_format:email", "out_of_range:age"]
    _, q = distinct_deliveries(parse_events(bronze(spark, [event(email="not an email", age=7)]), C), C)
    assert q.first()["reason"] == "bad_format:email"


def test_line_terminators_are_stripped_by_trim_and_fail_a_full_match(spark):
    # `trim` strips every whitespace, line terminators included; a column without trim must match its
    # regex as a whole, so a trailing CR is a bad format (Java's `$` alone would have accepted it).
    row = parse_events(bronze(spark, [event(email="ada@example.com\u2028", full_name="Ada\r\n")]), C).first()
    assert row["_reasons"] == [] and row["email"] == "ada@example.com" and row["full_name"] == "Ada"
    (reasons,) = reasons_of(spark, [event(customer_id="C0000001\r")])
    assert reasons == ["bad_format:customer_id"]


def test_every_delivery_is_accepted_quarantined_or_a_copy(spark):
    # An exact copy of an event (another offset), and of a bad record (same offset)
    msgs = [
        event(),
        "{bad",
        event(age=7),
        event(event_id="0b7e6a4e-0000-4000-8000-000000000002"),
        event(),
        "{bad",
    ]
    parsed = parse_events(bronze(spark, msgs, offsets=[0, 1, 2, 3, 4, 1]), C)
    accepted, quarantined = distinct_deliveries(parsed, C)
    assert accepted.count() == 2 and quarantined.count() == 2
    assert sum(r["_copies"] for r in accepted.collect()) + sum(r["_copies"] for r in quarantined.collect()) == len(msgs)
    kept = {r["event_id"]: r["offset"] for r in accepted.collect()}
    assert kept["0b7e6a4e-0000-4000-8000-000000000001"] == 0  # the first arrival is kept
    assert sorted(r["reason"] for r in quarantined.collect()) == ["out_of_range:age", "unparseable_json"]
    # Kept for replay
    assert {bytes(r["value"]) for r in quarantined.collect()} == {
        b"{bad",
        json.dumps(msgs[2]).encode(),
    }


def test_conflicting_copies_of_an_event_are_both_candidates(spark):
    # Same event id, different content: not an exact copy, so neither is silently dropped; the
    # latest-state order picks one by content, whatever the arrival order.
    a, b = event(monthly_spend=10.0), event(monthly_spend=99.0)
    one = latest_state(_events(spark, [a, b], [5, 9]), None, C).first()
    two = latest_state(_events(spark, [b, a], [5, 9]), None, C).first()
    accepted, _ = distinct_deliveries(parse_events(bronze(spark, [a, b]), C), C)
    assert accepted.count() == 2
    assert one["monthly_spend"] == two["monthly_spend"]


def _events(spark, msgs, offsets, ingest=None):
    accepted, _ = distinct_deliveries(parse_events(bronze(spark, msgs, offsets, ingest), C), C)
    return to_silver_rows(accepted, C)


def test_latest_state_is_the_latest_event_time_not_the_latest_arrival(spark):
    e1 = event(event_id="00000000-0000-4000-8000-000000000001", event_ts="2026-01-10T10:00:00Z", plan="free")
    e2 = event(event_id="00000000-0000-4000-8000-000000000002", event_ts="2026-01-10T11:00:00Z", plan="pro")
    e3 = event(event_id="00000000-0000-4000-8000-000000000003", event_ts="2026-01-10T09:00:00Z", plan="basic")
    other = event(event_id="00000000-0000-4000-8000-000000000004", customer_id="C0000002")
    # The latest event (e2) arrived first, with the lowest offset.
    df = _events(spark, [e2, e1, e3, other], offsets=[1, 5, 9, 2])
    state = {r["customer_id"]: r for r in latest_state(df, None, C).collect()}
    assert len(state) == 2
    assert state["C0000001"]["plan"] == "pro" and state["C0000001"]["_offset"] == 1
    assert all(r["_changed"] for r in state.values())


def test_merge_is_idempotent_and_order_independent(spark):
    a = _events(spark, [event(event_id="00000000-0000-4000-8000-00000000000a", event_ts="2026-01-10T10:00:00Z")], [1])
    b = _events(
        spark, [event(event_id="00000000-0000-4000-8000-00000000000b", event_ts="2026-01-10T11:00:00Z", age=40)], [2]
    )
    cols = [*C.names, "_source", "_partition", "_offset", "_ingest_ts"]
    ab = latest_state(b, latest_state(a, None, C).select(*cols), C).select(*cols)
    ba = latest_state(a, latest_state(b, None, C).select(*cols), C).select(*cols)
    abb = latest_state(b, ab, C).select(*cols)
    assert content_checksum(ab) == content_checksum(ba) == content_checksum(abb)
    assert ab.first()["age"] == 40


def test_an_exact_copy_of_the_current_state_changes_nothing(spark):
    e = event()
    first = latest_state(_events(spark, [e], [3]), None, C).drop("_changed")
    again = latest_state(_events(spark, [e], [700], ingest=datetime(2026, 1, 11, tzinfo=UTC)), first, C)
    (row,) = again.collect()
    assert row["_offset"] == 3 and row["_changed"] is False  # the first arrival keeps it; the gate sees no change


def test_a_tombstone_is_the_latest_state_and_leaves_gold(spark):
    alive = event(event_id="00000000-0000-4000-8000-000000000001", event_ts="2026-01-10T10:00:00Z")
    gone = event(
        event_id="00000000-0000-4000-8000-000000000002", event_ts="2026-01-10T11:00:00Z", event_type="customer_deleted"
    )
    other = event(event_id="00000000-0000-4000-8000-000000000003", customer_id="C0000002")
    state = latest_state(_events(spark, [alive, gone, other], [1, 2, 3]), None, C)
    assert {r["customer_id"]: r["event_type"] for r in state.collect()}["C0000001"] == "customer_deleted"
    # An older event processed later does not bring the customer back.
    again = latest_state(_events(spark, [alive], [1]), state.drop("_changed"), C)
    assert {r["customer_id"]: r["event_type"] for r in again.collect()}["C0000001"] == "customer_deleted"
    assert [r["customer_id"] for r in build_features(again.drop("_changed"), C).collect()] == ["C0000002"]


def test_quarantine_keeps_earlier_rows_and_does_not_double_reruns(spark):
    _, q1 = distinct_deliveries(parse_events(bronze(spark, ["{bad", "{worse"], offsets=[1, 2]), C), C)
    _, q2 = distinct_deliveries(parse_events(bronze(spark, ["{worse", "{new"], offsets=[2, 3]), C), C)
    merged = merge_quarantine(q2, merge_quarantine(q1, None))
    assert sorted(r["offset"] for r in merged.collect()) == [1, 2, 3]


def test_an_added_nullable_column_reads_as_null_from_older_silver(spark, tmp_path):
    state = latest_state(_events(spark, [event()], [1]), None, C).drop("_changed")
    old = state.drop("phone")  # Silver written before `phone` existed
    old.write.parquet(str(tmp_path / "old"))
    read = spark.read.schema(silver_schema(C)).parquet(str(tmp_path / "old"))
    assert read.first()["phone"] is None and read.first()["customer_id"] == "C0000001"


def test_features_are_relative_to_the_snapshot_time(spark):
    df = _events(
        spark,
        [
            event(
                event_id="00000000-0000-4000-8000-000000000001",
                event_ts="2026-01-10T12:00:00Z",
                signup_date="2026-01-01",
                last_login_date="2026-01-08",
                phone=None,
            ),
            event(
                event_id="00000000-0000-4000-8000-000000000002", customer_id="C0000002", event_ts="2026-01-05T00:00:00Z"
            ),
        ],
        [1, 2],
    )
    gold = {r["customer_id"]: r for r in build_features(latest_state(df, None, C).drop("_changed"), C).collect()}
    assert gold["C0000001"]["tenure_days"] == 9
    assert gold["C0000001"]["days_since_last_login"] == 2
    assert gold["C0000001"]["has_phone"] is False


def test_checksum_sees_content_not_order(spark):
    df1 = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    df2 = spark.createDataFrame([(2, "b"), (1, "a")], "id int, v string")
    df3 = spark.createDataFrame([(2, "b"), (1, "c")], "id int, v string")
    assert content_checksum(df1) == content_checksum(df2)
    assert content_checksum(df1) != content_checksum(df3)
    # NULL is not a value that can move between columns.
    n1 = spark.createDataFrame([(1, None)], "a int, b int")
    n2 = spark.createDataFrame([(None, 1)], "a int, b int")
    assert content_checksum(n1) != content_checksum(n2)
