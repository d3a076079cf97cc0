"""A topic's lifetimes (issue 20, item 4) and transactions, through the real landing and a real broker (tansu).

`mdp services down && up` empties the broker: the topic is created again and its offsets restart
at 0. Records of the new lifetime sit at positions (partition, offset) that Bronze already holds
from the old one; they must still reach Silver and the quarantine. Here the topic is deleted and
created again on the running broker, which is what a restart of the in-memory broker does to it
(the group's committed offsets go with the topic)."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.landing import LandingOptions, consumer_config, land
from ingestion.producer import ensure_topic, make_producer, publish
from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.lake import Interval, bronze_table_uri, read_parquet
from mdp.core.stages import get_stage
from mdp.core.storage import store_for
from mdp.shell.runner import run_pipeline
from tests.helpers import clean_events
from tests.server_helpers import committed_offsets

pytestmark = pytest.mark.integration
STAGES = ("land_bronze", "bronze_to_silver", "validate_silver")
BAD = b"not json: lands in the quarantine"


def recreate(bootstrap: str, topic: str) -> None:
    """Delete the topic and create it again: a new lifetime, offsets from 0, no committed offsets."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while topic in admin.list_topics():  # deletion is asynchronous on a real broker
            assert time.monotonic() < deadline, f"{topic} still listed after its deletion"
            time.sleep(0.2)
    finally:
        admin.close()
    assert ensure_topic(bootstrap, topic, partitions=1)


def produce(settings, messages: list[bytes]) -> None:
    producer = make_producer(settings)
    try:
        publish(producer, settings.topic, [(None, m) for m in messages])
    finally:
        producer.close()


def run_silver(settings, run_id: str) -> list[dict]:
    """`mdp run` up to a published Silver: land, bronze_to_silver, the gate. Figures per stage."""
    ctx = RunContext(settings=settings, interval=Interval.hour_of(datetime.now(UTC)), run_id=run_id)
    return [r.figures for r in run_pipeline(ctx, [get_stage(s) for s in STAGES]).results]


def published(settings, table: str):
    return catalog.read(settings, f"silver.{table}")


@pytest.mark.parametrize("second", [40, 55], ids=["same-bounds", "other-bounds"])
def test_a_recreated_topic_is_a_new_lifetime_in_bronze_silver_and_the_quarantine(
    local_settings, kafka, uid, monkeypatch, second
):
    """Lifetime 1: 40 events and one bad record at offset 20. The topic is recreated; lifetime 2:
    `second` later events and one bad record at offset 20 again. With 40 the new Bronze object has
    the old one's bounds (today: overwritten in place, never read again); with 55 it has other
    bounds (today: read, but its bad record is taken for a copy of the old one and dropped)."""
    topic = f"customers-{uid}"
    ensure_topic(kafka.kafka_bootstrap, topic, partitions=1)
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake")
    monkeypatch.setenv("MDP_LANDING_MAX_WAIT_S", "2")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old = clean_events(11, now - timedelta(hours=2), 40)
    new = clean_events(12, now - timedelta(hours=1), second)  # later events: each customer's latest state

    def with_bad(events):
        msgs = [json.dumps(e).encode() for e in events]
        return msgs[:20] + [BAD] + msgs[20:]

    produce(s, with_bad(old))
    first = run_silver(s, "lifetime-1")
    assert first[0]["landed"] == 41 and first[1]["bronze_in"] == 41 and first[1]["quarantined"] == 1

    recreate(kafka.kafka_bootstrap, topic)
    produce(s, with_bad(new))
    again = run_silver(s, "lifetime-2")
    assert again[0]["landed"] == second + 1

    bronze = read_parquet(s, bronze_table_uri(s))
    assert bronze.num_rows == 41 + second + 1  # both lifetimes are in Bronze, none overwritten
    assert again[1]["bronze_in"] == second + 1  # the new lifetime is read ...
    assert again[1]["quarantined"] == 1 and again[1]["duplicates"] == 0  # ... and its bad record is not a copy

    state = published(s, "state")
    latest = dict(zip(state["customer_id"].to_pylist(), state["event_id"].to_pylist(), strict=False))
    new_ids = {e["event_id"] for e in new}
    assert {latest[e["customer_id"]] for e in new} <= new_ids  # every customer of lifetime 2 is at its new state
    quarantine = published(s, "quarantine")
    assert quarantine.num_rows == 2  # one bad record from each lifetime
    assert len(set(quarantine["topic"].to_pylist())) == 2  # told apart by the topic's lifetime


def test_a_redelivery_within_one_lifetime_lands_the_same_object(local_settings, kafka, uid):
    """Deterministic names hold within a lifetime: landing the same records again (a crash before
    the commit, here a second consumer group) replaces the object with itself, never doubles it."""
    topic = f"customers-{uid}"
    ensure_topic(kafka.kafka_bootstrap, topic, partitions=1)
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake")
    produce(s, [json.dumps(e).encode() for e in clean_events(13, datetime.now(UTC) - timedelta(hours=1), 30)])
    store = store_for(s)
    one = land(s, store, LandingOptions(max_wait_s=2, group=f"a-{uid}"))
    names = sorted(store.walk_files(bronze_table_uri(s)))
    two = land(s, store, LandingOptions(max_wait_s=2, group=f"b-{uid}"))
    assert one["landed"] == two["landed"] == 30
    assert sorted(store.walk_files(bronze_table_uri(s))) == names  # the same object, not a second one
    assert read_parquet(s, bronze_table_uri(s)).num_rows == 30


def test_the_landing_refuses_to_overwrite_a_different_bronze_object(local_settings, kafka, uid):
    """Bronze objects are immutable (the file source never reads a path twice): should a new batch
    get the name of an existing object with other records, the landing stops and commits nothing."""
    from mdp.core.errors import StageError

    topic = f"customers-{uid}"
    ensure_topic(kafka.kafka_bootstrap, topic, partitions=1)
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake")
    produce(s, [b"one", b"two"])
    store = store_for(s)
    land(s, store, LandingOptions(max_wait_s=2, group=f"a-{uid}"))
    (name,) = store.walk_files(bronze_table_uri(s))
    uri = f"{bronze_table_uri(s)}/{name}"
    table = pq.read_table(io.BytesIO(store.get_bytes(uri)))
    changed = table.set_column(0, "value", pa.array([b"uno", b"dos"], pa.binary()))
    buf = io.BytesIO()
    pq.write_table(changed, buf)
    store.put_bytes(uri, buf.getvalue())  # the same name, other records (as a second lifetime would give)

    with pytest.raises(StageError, match="refusing to overwrite"):
        land(s, store, LandingOptions(max_wait_s=2, group=f"b-{uid}"))
    assert read_parquet(s, uri)["value"].to_pylist() == [b"uno", b"dos"]  # left as it was
    assert committed_offsets(kafka.kafka_bootstrap, topic, f"b-{uid}") == {0: None}  # redelivered to the next run


def test_the_landing_reads_committed_records_only(local_settings, kafka, uid):
    """A transactional producer's open (not yet committed) records are not landed (read_committed)."""
    from kafka import KafkaProducer

    topic = f"customers-{uid}"
    ensure_topic(kafka.kafka_bootstrap, topic, partitions=1)
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake")
    tx = KafkaProducer(bootstrap_servers=kafka.kafka_bootstrap, transactional_id=f"tx-{uid}", enable_idempotence=True)
    try:
        tx.init_transactions()
        tx.begin_transaction()
        for m in (b"c1", b"c2", b"c3"):
            tx.send(topic, m)
        tx.commit_transaction()
        tx.begin_transaction()
        tx.send(topic, b"open-1")
        tx.send(topic, b"open-2")
        tx.flush()  # in the log, but its transaction is still open
        figures = land(s, store_for(s), LandingOptions(max_wait_s=2, group=f"g-{uid}"))
    finally:
        tx.close(timeout=5)
    assert sorted(read_parquet(s, bronze_table_uri(s))["value"].to_pylist()) == [b"c1", b"c2", b"c3"]
    assert figures["landed"] == 3
    assert consumer_config(s, "g", 100)["isolation_level"] == "read_committed"


def test_a_topic_recreated_under_a_running_lander_lands_nothing_of_it(local_settings, kafka, uid):
    """The lander learnt the topic's id when it started; the topic is recreated before it polls.
    Whose lifetime its records are is then unknown: it lands and commits nothing, and says so.
    The next run lands the new lifetime under its own id."""
    from ingestion.landing import Lander
    from mdp.core.errors import MdpError

    topic = f"customers-{uid}"
    ensure_topic(kafka.kafka_bootstrap, topic, partitions=1)
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake")
    produce(s, [b"old-1", b"old-2"])
    store = store_for(s)
    opts = LandingOptions(max_wait_s=2, group=f"g-{uid}")
    lander = Lander(s, store, opts)
    recreate(kafka.kafka_bootstrap, topic)
    produce(s, [b"new-1", b"new-2", b"new-3"])
    with pytest.raises(MdpError, match="was recreated while landing"):
        lander.run()
    assert not store.walk_files(bronze_table_uri(s))
    figures = land(s, store, opts)
    assert figures["landed"] == 3
    (tagged,) = set(read_parquet(s, bronze_table_uri(s))["topic"].to_pylist())
    assert tagged.split("@")[1] != lander.topic_id
