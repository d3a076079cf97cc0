"""Kafka -> Bronze landing: a consumer group reads bounded batches, writes each batch to Bronze
atomically, and commits the offsets only after the write is durable.

Guarantees: at least once. A crash after the write and before the commit redelivers the batch on
the next run; the redelivered copy lands again (under a name from its own offsets) and Silver
drops the duplicate event ids. Nothing is committed that is not in Bronze, so nothing is lost.

Records land in the Bronze hour of their Kafka timestamp (broker or producer time), which is what
an hourly run for that interval reads. A run consumes whatever is available, not just its
interval: it stops when no record arrives within `max_wait_s`, or after `max_records`.

Options come from the environment (they tune one process, not the platform):
  MDP_LANDING_MAX_WAIT_S (5)      stop after this long without a new record
  MDP_LANDING_MAX_RECORDS (10M)   stop after this many records
  MDP_LANDING_BATCH_RECORDS (100k) records per Bronze write + commit
  MDP_LANDING_BATCH_WAIT_S (2)    write a partial batch after this long
  MDP_LANDING_GROUP (mdp-landing-<topic>)
  MDP_TEST_CRASH_AFTER_WRITE=1    test hook: SIGKILL this process right after the first durable write
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from mdp.context import RunContext, StageError
from mdp.lake import Interval, hour_floor
from mdp.settings import ConfigError, Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class LandingOptions:
    max_wait_s: float = 5.0
    max_records: int = 10_000_000
    batch_records: int = 100_000
    batch_wait_s: float = 2.0
    group: str | None = None
    join_timeout_s: float = 60.0

    @classmethod
    def from_env(cls, **overrides) -> "LandingOptions":
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"MDP_LANDING_{f.name.upper()}")
            if raw is None:
                continue
            try:
                values[f.name] = raw if f.name == "group" else (float(raw) if "_s" in f.name else int(raw))
            except ValueError:
                raise ConfigError(f"MDP_LANDING_{f.name.upper()}: {raw!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def group_id(self, topic: str) -> str:
        return self.group or f"mdp-landing-{topic}"


def consumer_config(settings: Settings, group_id: str, batch_records: int) -> dict:
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,  # commit only after Bronze is durable
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "max_poll_records": min(batch_records, 50_000),
        "max_poll_interval_ms": 300_000,
        # Big messages pass: several MB in one record must fit in one fetch.
        "fetch_max_bytes": 2 * MAX_MESSAGE_BYTES,
        "max_partition_fetch_bytes": MAX_MESSAGE_BYTES,
        "fetch_min_bytes": 1,
        "fetch_max_wait_ms": 100,
        "receive_buffer_bytes": 4 * 1024 * 1024,
        "check_crcs": True,  # cheap with the crc32c C extension
        "request_timeout_ms": 30_000,
    }


def _record_time(rec) -> datetime:
    ts = rec.timestamp
    if ts is None or ts < 0:
        return datetime.now(UTC)
    return datetime.fromtimestamp(ts / 1000, UTC)


class Lander:
    """One consumer-group member that lands batches into Bronze."""

    def __init__(self, settings: Settings, store, options: LandingOptions | None = None):
        from kafka import KafkaConsumer
        from kafka.errors import KafkaTimeoutError

        if not settings.kafka_bootstrap:
            raise ConfigError("kafka_bootstrap (MDP_KAFKA_BOOTSTRAP): required when source is kafka")
        self.settings, self.store = settings, store
        self.options = options or LandingOptions.from_env()
        self.topic = settings.kafka_topic
        try:
            self.consumer = KafkaConsumer(**consumer_config(settings, self.options.group_id(self.topic), self.options.batch_records))
        except KafkaTimeoutError:
            raise ConfigError(f"cannot reach Kafka at {settings.kafka_bootstrap} (kafka_bootstrap, MDP_KAFKA_BOOTSTRAP)") from None
        self.consumer.subscribe([self.topic])
        self.figures = {"landed": 0, "batches": 0, "bronze_objects": 0, "commit_failures": 0, "hours": {}}

    def _wait_for_assignment(self) -> dict:
        """Join the group; returns records polled while joining (not to be dropped)."""
        deadline = time.monotonic() + self.options.join_timeout_s
        while time.monotonic() < deadline:
            polled = self.consumer.poll(timeout_ms=200)
            if polled or self.consumer.assignment():
                return polled
        raise StageError(f"Kafka at {self.settings.kafka_bootstrap}: no partition of {self.topic!r} assigned to group "
                         f"{self.options.group_id(self.topic)!r} within {self.options.join_timeout_s:.0f}s")

    def _flush(self, batch: list) -> None:
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        from ingestion.bronze import RawRecord, write_bronze

        if not batch:
            return
        records = [RawRecord(r.value, r.key, r.partition, r.offset, _record_time(r)) for r in batch]
        uris = write_bronze(self.settings, self.store, records, source="kafka", topic=self.topic)
        # The write returned: every object is whole in the store (rename locally, a PUT on S3).
        if os.environ.get("MDP_TEST_CRASH_AFTER_WRITE") == "1":
            sys.stderr.write(f"MDP_TEST_CRASH_AFTER_WRITE: killing myself after writing {len(uris)} objects\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        offsets: dict = {}
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            if r.offset + 1 > offsets.get(tp, -1):
                offsets[tp] = r.offset + 1
        try:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except CommitFailedError as exc:
            # A rebalance took the partitions away: the batch is in Bronze and will be redelivered
            # to the new owner; Silver drops the duplicate event ids. Nothing is lost.
            self.figures["commit_failures"] += 1
            log.warning("offset commit failed after a durable write (will be redelivered): %s", exc)
        hours = self.figures["hours"]
        for rec in records:
            key = f"{hour_floor(rec.ingest_ts):%Y-%m-%dT%H}"
            hours[key] = hours.get(key, 0) + 1
        self.figures["landed"] += len(batch)
        self.figures["batches"] += 1
        self.figures["bronze_objects"] += len(uris)

    def run(self) -> dict:
        opts = self.options
        clock = time.perf_counter
        t_start = clock()
        batch: list = []
        batch_started = None
        tail_flush = 0.0
        try:
            polled = self._wait_for_assignment()
            t0 = clock()
            last_record = t0
            total_seen = 0
            while True:
                for recs in polled.values():
                    batch.extend(recs)
                    total_seen += len(recs)
                now = clock()
                if polled:
                    last_record = now
                    tail_flush = 0.0
                    batch_started = batch_started or now
                timed_out = not polled and now - last_record >= opts.max_wait_s
                done = total_seen >= opts.max_records or timed_out
                if batch and (done or len(batch) >= opts.batch_records or now - batch_started >= opts.batch_wait_s):
                    self._flush(batch)
                    batch, batch_started = [], None
                    if not polled:  # a flush after the last record: busy time, not idle time
                        tail_flush += clock() - now
                if done:
                    break
                room = min(opts.batch_records - len(batch), opts.max_records - total_seen)
                polled = self.consumer.poll(timeout_ms=200, max_records=max(1, min(room, 50_000)))
            # Busy time: from the first poll after the join to the last record, plus the writes after it
            # (the join and the final idle wait are not landing work).
            active_s = max(last_record - t0 + tail_flush, 1e-6)
        finally:
            self.consumer.close(autocommit=False)
        landed = self.figures["landed"]
        self.figures.update(
            seconds=round(clock() - t_start, 2),
            active_seconds=round(active_s, 3),
            events_per_s=round(landed / active_s) if landed else 0,
        )
        return self.figures


def land(settings: Settings, store, options: LandingOptions | None = None) -> dict:
    return Lander(settings, store, options).run()


def land_interval(ctx: RunContext) -> dict:
    """Stage entry (land_bronze with source=kafka): land what the topic holds, report per hour."""
    from mdp.services import check_s3

    check_s3(ctx.settings)  # a wrong key or a missing bucket fails here, naming the endpoint
    try:
        figures = land(ctx.settings, ctx.store)
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, (ClientError, BotoCoreError)):
            raise StageError(f"Bronze write to S3 at {ctx.settings.s3_endpoint} failed: {exc}") from None
        raise
    interval: Interval = ctx.interval
    in_interval = sum(n for h, n in figures["hours"].items()
                      if interval.start <= datetime.fromisoformat(h + ":00+00:00") < interval.end)
    figures["in_interval"] = in_interval
    figures["outside_interval"] = figures["landed"] - in_interval
    if figures["outside_interval"]:
        log.warning("%d landed records belong to hours outside %s (they are read by those hours' runs)",
                    figures["outside_interval"], interval)
    return figures


def main(argv: list[str] | None = None) -> int:
    """`python -m ingestion.landing`: one landing run with settings from the environment (MDP_*)."""
    import json

    from mdp.settings import get_settings
    from mdp.storage import store_for

    logging.basicConfig(level=os.environ.get("MDP_LOG_LEVEL", "WARNING"))
    settings = get_settings()
    figures = land(settings, store_for(settings))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
