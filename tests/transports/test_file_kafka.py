"""The file source with a Kafka source (local, compose, kind): rows go to the topic, then the landing
brings them to Bronze. A real broker (tansu)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from _transport_helpers import read_topic
from ingestion.examples import write_example
from ingestion.file_source import ingest_file, read_file, to_events
from mdp.core.context import RunContext
from mdp.core.contract import load_contract
from mdp.core.lake import Interval, bronze_table_uri, read_parquet
from mdp.core.storage import store_for

pytestmark = pytest.mark.integration
ROWS = 300


def test_mdp_ingest_produces_each_row_to_the_topic_keyed_by_the_primary_key(local_settings, topic, tmp_path):
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake", contract="subscribers")
    path = write_example("subscribers", tmp_path / "s.csv", rows=ROWS)
    figures = ingest_file(s, store_for(s), path)
    assert figures["destination"] == f"kafka topic {topic}" and figures["events"] == ROWS

    records = read_topic(s.kafka_bootstrap, topic)
    expected = to_events(read_file(path), load_contract("subscribers")).messages
    assert Counter((r.key, r.value) for r in records) == Counter((k, v) for _, k, v in expected)
    assert all(json.loads(r.value)["account_no"] == r.key.decode() for r in records)
    # The same key always goes to the same partition: one account's changes stay in order.
    assert len({r.key for r in records}) == ROWS


def test_run_input_with_a_kafka_source_produces_then_lands(local_settings, topic, tmp_path):
    from ingestion.land import run as land_bronze

    path = write_example("subscribers", tmp_path / "s.csv", rows=ROWS)
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake", contract="subscribers", input_file=str(path))
    now = datetime.now(UTC)
    figures = land_bronze(RunContext(s, Interval.hour_of(now)))
    assert figures["input_rows"] == ROWS and figures["landed"] == ROWS

    table = read_parquet(s, bronze_table_uri(s))
    assert table.num_rows == ROWS and set(table["source"].to_pylist()) == {"kafka"}
    expected = {v for _, _, v in to_events(read_file(path), load_contract("subscribers")).messages}
    assert set(table["value"].to_pylist()) == expected  # bytes unchanged through the broker
