"""Each pure transform on tiny frames, with the shared Spark session."""

import json
from datetime import UTC, datetime

import pytest

from mdp.core.contract import load_contract
from spark_apps.bronze_to_silver import bronze_spark_schema
from spark_apps.transforms import (
    build_features,
    content_checksum,
    latest_state,
    mark_duplicates,
    merge_quarantine,
    parse_events,
    split_quarantine,
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


def bronze(spark, messages, offsets=None):
    rows = []
    for i, m in enumerate(messages):
        raw = m if isinstance(m, (str, bytes)) else json.dumps({k: v for k, v in m.items() if v is not ...})
        raw = raw if isinstance(raw, bytes) else raw.encode()
        off = offsets[i] if offsets else i
        rows.append((raw, b"k", "test", "customers", 0, off, INGEST, "2026-01-10", "12"))
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


def test_split_keeps_every_row_exactly_once(spark):
    msgs = [event(), "{bad", event(age=7), event(event_id="0b7e6a4e-0000-4000-8000-000000000002")]
    parsed = parse_events(bronze(spark, msgs), C)
    valid, quarantined = split_quarantine(parsed)
    assert valid.count() == 2 and quarantined.count() == 2
    reasons = sorted(r["reason"] for r in quarantined.collect())
    assert reasons == ["out_of_range:age", "unparseable_json"]
    assert {bytes(r["value"]) for r in quarantined.collect()} == {b"{bad", json.dumps(msgs[2]).encode()}  # kept for replay


def test_duplicates_keep_the_first_delivery(spark):
    first = event(monthly_spend=10.0)
    conflicting = event(monthly_spend=99.0)  # same event id, different content
    valid, _ = split_quarantine(parse_events(bronze(spark, [first, conflicting], offsets=[5, 9]), C))
    marked = mark_duplicates(valid, C).collect()
    kept = [r for r in marked if not r["_dup"]]
    assert len(kept) == 1 and kept[0]["offset"] == 5 and kept[0]["monthly_spend"] == 10.0


def _events_df(spark, msgs, offsets):
    valid, _ = split_quarantine(parse_events(bronze(spark, msgs, offsets), C))
    return to_silver_rows(mark_duplicates(valid, C).where("not _dup"), C)


def test_latest_state_by_event_time_then_offset(spark):
    e1 = event(event_id="00000000-0000-4000-8000-000000000001", event_ts="2026-01-10T10:00:00Z", plan="free")
    e2 = event(event_id="00000000-0000-4000-8000-000000000002", event_ts="2026-01-10T11:00:00Z", plan="pro")
    e3 = event(event_id="00000000-0000-4000-8000-000000000003", event_ts="2026-01-10T11:00:00Z", plan="basic")
    other = event(event_id="00000000-0000-4000-8000-000000000004", customer_id="C0000002")
    # e2 and e3 tie on event time: the higher source offset (e2 here) wins, whatever the input order.
    df = _events_df(spark, [e3, e1, e2, other], offsets=[3, 1, 7, 2])
    state = {r["customer_id"]: r for r in latest_state(df, None, C).collect()}
    assert len(state) == 2
    assert state["C0000001"]["plan"] == "pro" and state["C0000001"]["_offset"] == 7


def test_merge_is_idempotent_and_order_independent(spark):
    a = _events_df(spark, [event(event_id="00000000-0000-4000-8000-00000000000a", event_ts="2026-01-10T10:00:00Z")], [1])
    b = _events_df(spark, [event(event_id="00000000-0000-4000-8000-00000000000b", event_ts="2026-01-10T11:00:00Z", age=40)], [2])
    ab = latest_state(b, latest_state(a, None, C), C)
    ba = latest_state(a, latest_state(b, None, C), C)
    abb = latest_state(b, ab, C)
    assert content_checksum(ab) == content_checksum(ba) == content_checksum(abb)
    assert ab.first()["age"] == 40


def test_quarantine_merge_does_not_double_reruns(spark):
    _, q = split_quarantine(parse_events(bronze(spark, ["{bad", "{worse"]), C))
    assert merge_quarantine(q, merge_quarantine(q, None)).count() == 2


def test_features_are_relative_to_the_snapshot_time(spark):
    df = _events_df(
        spark,
        [
            event(event_id="00000000-0000-4000-8000-000000000001", event_ts="2026-01-10T12:00:00Z",
                  signup_date="2026-01-01", last_login_date="2026-01-08", phone=None),
            event(event_id="00000000-0000-4000-8000-000000000002", customer_id="C0000002", event_ts="2026-01-05T00:00:00Z"),
        ],
        [1, 2],
    )
    gold = {r["customer_id"]: r for r in build_features(latest_state(df, None, C), C).collect()}
    assert gold["C0000001"]["tenure_days"] == 9
    assert gold["C0000001"]["days_since_last_login"] == 2
    assert gold["C0000001"]["has_phone"] is False
    assert gold["C0000002"]["churned"] in (0, 1)


def test_checksum_sees_content_not_order(spark):
    df1 = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    df2 = spark.createDataFrame([(2, "b"), (1, "a")], "id int, v string")
    df3 = spark.createDataFrame([(2, "b"), (1, "c")], "id int, v string")
    assert content_checksum(df1) == content_checksum(df2)
    assert content_checksum(df1) != content_checksum(df3)
