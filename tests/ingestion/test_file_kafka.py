"""The file source with a Kafka source (local, compose, kind): rows go to the topic, then the landing
brings them to Bronze. A real broker (tansu)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from ingestion.examples import write_example
from ingestion.file_source import ingest_file, read_file, to_events
from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.contract import load_contract
from mdp.core.lake import Interval, bronze_table_uri, read_parquet
from mdp.core.storage import store_for
from tests.server_helpers import read_topic

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
    s = local_settings(
        kafka_topic=topic, source="kafka", lake_root=".mdp/lake", contract="subscribers", input_file=str(path)
    )
    now = datetime.now(UTC)
    figures = land_bronze(RunContext(s, Interval.hour_of(now)))
    assert figures["input_rows"] == ROWS and figures["landed"] == ROWS

    table = read_parquet(s, bronze_table_uri(s))
    assert table.num_rows == ROWS and set(table["source"].to_pylist()) == {"kafka"}
    expected = {v for _, _, v in to_events(read_file(path), load_contract("subscribers")).messages}
    assert set(table["value"].to_pylist()) == expected  # bytes unchanged through the broker


def test_the_last_row_of_a_key_in_a_file_wins_on_both_paths(local_settings, topic, tmp_path):
    """Issue 27 finding 5: without an event time the state is the latest arrival. Through Kafka the
    rows of a file share a millisecond timestamp, and the content used to decide between two rows
    of a key: about half the keys kept their older row. The last row wins, through Kafka as on the
    embedded path, and the two Silvers are the same (contract columns; lineage differs by design)."""
    import csv

    from mdp.core.stages import get_stage
    from mdp.shell.runner import run_pipeline

    path = write_example("subscribers", tmp_path / "s.csv", rows=60)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    edits = [{**r, "tenure_months": str(int(r["tenure_months"]) + 1)} for r in rows[::2]]
    both = tmp_path / "both.csv"
    with both.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows + edits)  # each edited key: its original row first, its edit later in the file
    want = {r["account_no"]: r["tenure_months"] for r in rows + edits}  # the last row of each key

    def silver(**kw) -> dict:
        s = local_settings(lake_root=".mdp/lake", contract="subscribers", input_file=str(both), **kw)
        ctx = RunContext(s, Interval.hour_of(datetime.now(UTC)))
        run_pipeline(ctx, [get_stage(n) for n in ("land_bronze", "bronze_to_silver", "validate_silver")])
        table = catalog.read(s, "silver.state")
        names = load_contract("subscribers").names
        return {str(r["account_no"]): tuple(r[n] for n in names) for r in table.to_pylist()}

    kafka = silver(kafka_topic=topic, source="kafka", home=tmp_path / "kafka")
    tenure = load_contract("subscribers").names.index("tenure_months")
    assert {k: str(v[tenure]) for k, v in kafka.items()} == want
    embedded = silver(source="file", home=tmp_path / "embedded")
    assert embedded == kafka
