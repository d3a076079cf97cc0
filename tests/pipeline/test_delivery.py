"""Silver under real delivery (issue 11): redelivery, late data, a paused pipeline, broken batches,
deletes, concurrent writers and contract evolution, each on its own small embedded lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from ingestion.bronze import RawRecord, write_bronze
from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.contract import load_contract
from mdp.core.errors import Busy, ConfigError, GateFailed, StageError
from mdp.core.lake import Interval, Lease, spark_uri
from mdp.core.settings import get_settings
from mdp.core.stages import get_stage
from mdp.core.storage import join, store_for
from mdp.core.tables import silver_dataset
from mdp.shell.runner import run_pipeline
from spark_apps.transforms import content_checksum
from tests.helpers import clean_events

pytestmark = pytest.mark.integration
H = datetime(2026, 4, 6, 9, tzinfo=UTC)
N = 1500
SILVER = ("bronze_to_silver", "validate_silver")


def land(settings, hour, messages, offsets=None, source="kafka", ingest=None):
    """Write messages into Bronze as a landing would: one object per batch, named by its offsets."""
    offsets = offsets or list(range(len(messages)))
    records = [
        RawRecord(m, None, 0, o, ingest or hour + timedelta(seconds=1 + i % 3000))
        for i, (m, o) in enumerate(zip(messages, offsets, strict=False))
    ]
    write_bronze(settings, store_for(settings), records, source=source, topic="customers")


def run(settings, stages=SILVER, run_id=None, interval=None, backfill=False):
    ctx = RunContext(
        settings, interval or Interval.hour_of(H), run_id=run_id or f"r{datetime.now(UTC):%H%M%S%f}", backfill=backfill
    )
    return run_pipeline(ctx, [get_stage(s) for s in stages])


def silver_checksum(spark, settings):
    return content_checksum(spark.read.parquet(*[spark_uri(u) for u in catalog.files(settings, "silver.state")]))


def messages(seed, hour=H, n=N):
    return [json.dumps(e).encode() for e in clean_events(seed, hour, n)]


@pytest.fixture
def lake(tmp_path):
    return get_settings(home=tmp_path, seed=3)


@pytest.mark.parametrize("share", [0.15, 1.0])
def test_redelivery_publishes_the_same_silver(tmp_path, spark, share):
    msgs = messages(1)
    plain = get_settings(home=tmp_path / "plain")
    land(plain, H, msgs)
    run(plain)
    redelivered = get_settings(home=tmp_path / "redelivered")
    land(redelivered, H, msgs)
    again = int(len(msgs) * share)
    # A landing that crashed between the Bronze write and the offset commit lands the same Kafka
    # records (same offsets) again, in objects with other bounds (batches of 500 this time; an
    # object with the very same bounds would simply replace the first copy).
    for start in range(0, again, 500):
        chunk = range(start, min(start + 500, again))
        land(redelivered, H, [msgs[i] for i in chunk], offsets=list(chunk), ingest=H + timedelta(minutes=59))
    report = run(redelivered)
    f = report.figures("bronze_to_silver")
    assert f["bronze_in"] == N + again and f["duplicates"] >= again
    assert report.figures("validate_silver")["published"] is True
    assert silver_checksum(spark, redelivered) == silver_checksum(spark, plain)


def test_a_producer_resend_in_a_later_hour_changes_nothing(lake, spark):
    msgs = messages(2)
    land(lake, H, msgs)
    run(lake)
    before = silver_checksum(spark, lake)
    # The same events sent again by a producer: new offsets, a later hour.
    land(lake, H + timedelta(hours=1), msgs[:300], offsets=list(range(10_000, 10_300)))
    report = run(lake)
    assert report.figures("bronze_to_silver")["changed"] == 0
    assert silver_checksum(spark, lake) == before


def test_a_new_field_in_every_message_stops_the_run_at_the_gate(lake):
    land(lake, H, messages(3))
    run(lake)
    current = silver_dataset(lake).current()["version"]
    land(
        lake,
        H + timedelta(hours=1),
        [json.dumps({**e, "loyalty_tier": "gold"}).encode() for e in clean_events(4, H + timedelta(hours=1), N)],
    )
    with pytest.raises(GateFailed) as err:
        run(lake, run_id="new-field")
    assert err.value.exit_code == 3
    assert "_unknown_field" in str(err.value) and "quality.max_unknown_fields = 0.05" in str(err.value)
    assert silver_dataset(lake).current()["version"] == current


@pytest.mark.parametrize("damage", ["unparseable", "nullable_type"])
def test_a_batch_broken_wholesale_stops_the_run(lake, damage):
    events = clean_events(5, H, N)
    if damage == "unparseable":  # 95% of the hour is not JSON
        msgs = [b"{not json" if i % 20 else json.dumps(e).encode() for i, e in enumerate(events)]
        threshold = "quality.max_unparseable"
    else:  # a nullable column whose type breaks for every row
        msgs = [json.dumps({**e, "last_login_date": "yesterday"}).encode() for e in events]
        threshold = "quality.max_bad_type"
    land(lake, H, msgs)
    with pytest.raises(GateFailed, match=threshold):
        run(lake)


def test_late_records_reach_silver_on_the_next_run(lake):
    land(lake, H, messages(6))
    run(lake)
    rows = silver_dataset(lake).current()["silver_rows"]
    # Records with a Kafka timestamp in hour H land after H was processed (another object in H's partition).
    late = clean_events(7, H, 40)
    land(
        lake,
        H,
        [json.dumps({**e, "customer_id": f"C9{i:06d}"}).encode() for i, e in enumerate(late)],
        offsets=list(range(50_000, 50_040)),
    )
    report = run(lake, interval=Interval.hour_of(H + timedelta(hours=5)))  # a later hour's run
    assert report.figures("bronze_to_silver")["bronze_in"] == 40
    assert silver_dataset(lake).current()["silver_rows"] == rows + 40


def test_a_paused_pipeline_catches_up_in_one_run(lake):
    for i in range(3):
        land(
            lake,
            H + timedelta(hours=i),
            messages(10 + i, H + timedelta(hours=i), 500),
            offsets=list(range(i * 500, (i + 1) * 500)),
        )
    report = run(lake)
    assert report.figures("bronze_to_silver")["bronze_in"] == 1500
    assert report.figures("bronze_to_silver")["bronze_objects"] == 3
    assert run(lake).figures("bronze_to_silver")["bronze_in"] == 0  # and then nothing is new


def test_a_backfill_reprocesses_its_hours_idempotently(lake, spark):
    land(lake, H, messages(20))
    run(lake)
    before = silver_checksum(spark, lake), silver_dataset(lake).current()["quarantine_rows"]
    report = run(lake, interval=Interval.hour_of(H), backfill=True)
    assert report.figures("bronze_to_silver")["bronze_in"] == N and report.figures("bronze_to_silver")["changed"] == 0
    assert (silver_checksum(spark, lake), silver_dataset(lake).current()["quarantine_rows"]) == before


def test_a_delete_removes_the_customer_from_silver_and_gold(lake):
    events = clean_events(8, H, N)
    land(lake, H, [json.dumps(e).encode() for e in events])
    run(lake, stages=(*SILVER, "silver_to_gold"))
    victim = events[-1]
    tombstone = {
        **victim,
        "event_id": "00000000-0000-4000-8000-0000000000dd",
        "event_type": "customer_deleted",
        "event_ts": (H + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    land(lake, H + timedelta(hours=1), [json.dumps(tombstone).encode()], offsets=[90_000])
    run(lake, stages=(*SILVER, "silver_to_gold"))
    state = catalog.read(lake, "silver.state").to_pandas().set_index("customer_id")
    assert state.loc[victim["customer_id"], "event_type"] == "customer_deleted"
    features = catalog.read(lake, "gold.features").to_pandas()
    assert victim["customer_id"] not in set(features.customer_id)
    assert len(features) == len(state) - 1


def test_a_second_writer_is_refused(lake):
    land(lake, H, messages(9))
    silver = silver_dataset(lake)
    holder = Lease(store_for(lake), join(silver.root, "_LEASE.json"), "another-run", ttl_s=60).acquire()
    try:
        with pytest.raises(Busy, match="another-run") as err:
            run(lake)
        assert err.value.exit_code == 5
    finally:
        holder.release()
    run(lake)  # once the lease is free, the run goes through


def test_publishing_is_a_compare_and_swap_on_the_version_staged_from(lake):
    land(lake, H, messages(11))
    run(lake)
    land(lake, H + timedelta(hours=1), messages(12, H + timedelta(hours=1)), offsets=list(range(N, 2 * N)))
    run(lake, stages=("bronze_to_silver",), run_id="first")
    silver = silver_dataset(lake)
    staged = silver.staged("first")
    assert staged["write"] and staged["based_on"] == silver.current()["version"]
    # Another writer publishes in between (a backfill, here): the first run's version is now stale.
    run(lake, interval=Interval.hour_of(H), backfill=True, run_id="second")
    with pytest.raises(StageError, match="moved"):
        run(lake, stages=("validate_silver",), run_id="first")
    assert silver.current()["version"] == silver.staged("second")["version"]


def test_the_gate_publishes_exactly_what_its_run_staged(lake):
    land(lake, H, messages(13))
    run(lake, stages=("bronze_to_silver",), run_id="mine")
    with pytest.raises(StageError, match="nothing staged"):
        run(lake, stages=("validate_silver",), run_id="someone-else")
    report = run(lake, stages=("validate_silver",), run_id="mine")
    assert report.figures("validate_silver")["validated_version"] == silver_dataset(lake).current()["version"]
    assert run(lake, stages=("validate_silver",), run_id="mine").figures("validate_silver")["published"] is True


def _contract_with(tmp_path, name, change):
    data = load_contract().model_dump(mode="json", exclude_none=True)
    change(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_adding_a_nullable_column_needs_no_rebuild_and_an_incompatible_change_is_named(lake, tmp_path):
    land(lake, H, messages(14))
    run(lake)
    added = _contract_with(
        tmp_path, "added", lambda d: d["columns"].append({"name": "referral_code", "type": "string"})
    )
    wider = get_settings(home=lake.home, contract=added)
    hour = H + timedelta(hours=1)
    land(
        wider,
        hour,
        [json.dumps({**e, "referral_code": "R1"}).encode() for e in clean_events(15, hour, 200)],
        offsets=list(range(N, N + 200)),
    )
    report = run(wider, interval=Interval.hour_of(hour))
    assert report.figures("validate_silver")["published"] is True
    state = catalog.read(wider, "silver.state").to_pandas()
    assert state.referral_code.notna().sum() > 0 and state.referral_code.isna().sum() > 0

    retyped = _contract_with(
        tmp_path, "retyped", lambda d: next(c for c in d["columns"] if c["name"] == "age").update(type="double")
    )
    with pytest.raises(ConfigError, match="columns.age: type changed from int to double"):
        run(get_settings(home=lake.home, contract=retyped))
