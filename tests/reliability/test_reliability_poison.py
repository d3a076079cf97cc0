"""Issue 7.7 - poison messages on Kafka.

A real broker (tansu, started on a free 127.0.0.1 port). Between clean events the topic carries a
message that is not UTF-8, a several-MB message, an empty message and a tombstone (no value).
Two more are valid JSON with values no store downstream holds (a date of year 10000, text with
U+0000). Landing does not stop on them: every record reaches Bronze as its raw bytes; Bronze ->
Silver puts the poison in quarantine with a reason (bytes unchanged) and merges the clean events;
the gate publishes that quarantine.
Skipped, with the reason, when the tansu binary is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingestion.landing import LandingOptions, land
from ingestion.producer import ensure_topic, make_producer, publish
from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.lake import Interval, bronze_table_uri, read_parquet
from mdp.core.stages import get_stage
from mdp.core.storage import store_for
from mdp.shell.runner import run_stage
from mdp.shell.services import LocalServices, Ports, ServiceConfig, ServiceError, find_binary
from tests.helpers import clean_events
from tests.reliability.harness import make_lake

pytestmark = pytest.mark.integration

POISON = {
    "not_utf8": b"\xff\xfe\x00\x80 not utf-8 \xc3\x28",
    "several_mb": b'{"event_id": "' + os.urandom(3 * 1024 * 1024).hex().encode() + b'"',  # 6 MB, truncated JSON
    "empty": b"",
    "tombstone": None,
}


@pytest.fixture(scope="module")
def broker():
    try:
        find_binary("kafka")
    except ServiceError as exc:
        pytest.skip(f"Kafka half of issue 7.7 needs the tansu binary: {exc}")
    root = Path(tempfile.mkdtemp(prefix="mdp-rel-kafka-"))
    svc = LocalServices(root / "services", ServiceConfig(ports=Ports.free()))
    try:
        svc.start("kafka")
        yield svc
    finally:
        svc.down(("kafka",))
        shutil.rmtree(root, ignore_errors=True)


def test_poison_messages_do_not_stop_landing_and_end_in_quarantine(broker, tmp_path, spark):
    settings = make_lake(tmp_path).model_copy(
        update={"source": "kafka", "kafka_bootstrap": broker.kafka_bootstrap, "kafka_topic": "poison-rel7"}
    )
    ensure_topic(settings.kafka_bootstrap, settings.topic, partitions=1)
    now = datetime.now(UTC)
    events = clean_events(77, Interval.hour_of(now).start, 42)
    good = [json.dumps(e).encode() for e in events[:40]]
    # Valid JSON with values no store downstream holds: a date of year 10000, text with U+0000.
    values = {
        "year_10000": json.dumps({**events[40], "signup_date": "10000-01-01"}).encode(),
        "nul_text": json.dumps({**events[41], "full_name": "Ada\u0000Lovelace"}).encode(),
    }
    messages = good[:20] + list(POISON.values()) + list(values.values()) + good[20:]  # what follows poison lands too
    producer = make_producer(settings)
    try:
        # A tombstone has a key
        publish(producer, settings.topic, [(b"C9999999" if m is None else None, m) for m in messages])
    finally:
        producer.close()

    figures = land(settings, store_for(settings), LandingOptions(max_wait_s=2, group="rel7-poison"))
    assert figures["landed"] == len(messages)
    bronze = read_parquet(settings, bronze_table_uri(settings)).to_pydict()
    # Raw bytes, none lost, none altered
    assert sorted(bronze["value"], key=lambda v: (v is None, len(v or b""), v or b"")) == sorted(
        messages, key=lambda v: (v is None, len(v or b""), v or b"")
    )

    hours = [datetime.fromisoformat(h + ":00+00:00") for h in figures["hours"]]
    ctx = RunContext(settings, Interval(min(hours), max(hours) + timedelta(hours=1)), run_id="poison")
    f = run_stage(get_stage("bronze_to_silver"), ctx).figures
    assert f["bronze_in"] == len(messages)
    assert f["quarantine_reasons"] == {
        "unparseable_json": len(POISON),
        "bad_type:signup_date": 1,
        "bad_type:full_name": 1,
    }
    assert f["accepted"] == len(good) and f["accepted"] + f["quarantined"] + f["duplicates"] == f["bronze_in"]
    # The gate reads the batch with those values in it, and publishes: the poison ends in the
    # published quarantine, bytes unchanged (the gate once died on the year 10000, on every run).
    assert run_stage(get_stage("validate_silver"), ctx).figures["published"] is True
    q = catalog.read(settings, "silver.quarantine").to_pydict()
    poison = [*POISON.values(), *values.values()]

    # None and b"" both have no bytes
    def order(v):
        return (v is None, len(v or b""), v or b"")

    assert sorted(q["value"], key=order) == sorted(poison, key=order)
    assert sorted(q["reason"]) == sorted(
        ["unparseable_json"] * len(POISON) + ["bad_type:full_name", "bad_type:signup_date"]
    )
