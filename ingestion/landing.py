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
  MDP_LANDING_BATCH_RECORDS (50k)  records per Bronze write + commit
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
from collections import Counter, deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from mdp.core.context import RunContext, StageError
from mdp.core.lake import Interval, hour_floor
from mdp.core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class LandingOptions:
    max_wait_s: float = 5.0
    max_records: int = 10_000_000
    batch_records: int = 50_000
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
                values[f.name] = raw if f.name == "group" else (float(raw) if f.name.endswith("_s") else int(raw))
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


def _warm_up() -> None:
    """Pay one-off import costs (pyarrow converts tz-aware datetimes through pandas) before timing."""
    import pyarrow as pa

    pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC"))


class Lander:
    """One consumer-group member that lands batches into Bronze.

    Decoding (the consumer, main thread) and writing (one writer thread) overlap: while batch N is
    written, batch N+1 is fetched. Offsets are committed by the main thread (the consumer is not
    thread-safe), in batch order, and only for batches whose write has returned.
    """

    def __init__(self, settings: Settings, store, options: LandingOptions | None = None):
        from concurrent.futures import ThreadPoolExecutor

        from kafka import KafkaConsumer
        from kafka.errors import KafkaTimeoutError

        if not settings.kafka_bootstrap:
            raise ConfigError("kafka_bootstrap (MDP_KAFKA_BOOTSTRAP): required when source is kafka")
        self.settings, self.store = settings, store
        self.options = options or LandingOptions.from_env()
        self.topic = settings.topic
        try:
            self.consumer = KafkaConsumer(**consumer_config(settings, self.options.group_id(self.topic), self.options.batch_records))
        except KafkaTimeoutError:
            raise ConfigError(f"cannot reach Kafka at {settings.kafka_bootstrap} (kafka_bootstrap, MDP_KAFKA_BOOTSTRAP)") from None
        if not self.consumer.partitions_for_topic(self.topic):
            self.consumer.close()
            raise ConfigError(f"Kafka at {settings.kafka_bootstrap} has no topic {self.topic!r} (kafka_topic, MDP_KAFKA_TOPIC): "
                              "create it with `mdp services bootstrap`, or produce to it first")
        self.consumer.subscribe([self.topic], listener=_Revoked(self))
        _warm_up()
        self.batch: list = []
        self.pending: deque = deque()  # (future, offsets) in submission order
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-writer")
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

    def _write(self, batch: list) -> tuple[list[str], dict[str, int]]:
        """Writer thread: one Bronze object per (hour, partition) of the batch. Returns (uris, rows per hour)."""
        from ingestion.bronze import RawRecord, write_bronze

        # Records of one producer batch share a timestamp: convert each distinct one once.
        times: dict[int, datetime] = {}
        records = []
        for r in batch:
            t = times.get(r.timestamp)
            if t is None:
                t = times[r.timestamp] = _record_time(r)
            records.append(RawRecord(r.value, r.key, r.partition, r.offset, t))
        uris = write_bronze(self.settings, self.store, records, source="kafka", topic=self.topic)
        # The write returned: every object is whole in the store (rename locally, a PUT on S3).
        if os.environ.get("MDP_TEST_CRASH_AFTER_WRITE") == "1":
            sys.stderr.write(f"MDP_TEST_CRASH_AFTER_WRITE: killing myself after writing {len(uris)} objects\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        hours: dict[str, int] = {}
        for ts, n in Counter(r.timestamp for r in batch).items():
            key = f"{hour_floor(times[ts]):%Y-%m-%dT%H}"
            hours[key] = hours.get(key, 0) + n
        return uris, hours

    def _submit(self) -> None:
        """Hand the current batch to the writer; keep at most two batches in memory."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        batch, self.batch = self.batch, []
        if not batch:
            return
        last: dict[int, int] = {}
        for r in batch:
            if r.offset >= last.get(r.partition, -1):
                last[r.partition] = r.offset
        offsets = {TopicPartition(self.topic, p): OffsetAndMetadata(o + 1, "", -1) for p, o in last.items()}
        self.pending.append((self.writer.submit(self._write, batch), offsets, len(batch)))
        self._commit_written(block_until=1)

    def _commit_written(self, block_until: int = 0) -> None:
        """Commit the offsets of finished writes, in order; block while more than `block_until` are pending."""
        from kafka.errors import CommitFailedError

        while self.pending and (len(self.pending) > block_until or self.pending[0][0].done()):
            future, offsets, n = self.pending.popleft()
            uris, hours = future.result()  # a failed write raises here, before any commit
            try:
                self.consumer.commit(offsets)
            except CommitFailedError as exc:
                # The group moved the partitions on: the batch is in Bronze and is redelivered to the
                # new owner; Silver drops the duplicate event ids. Nothing is lost.
                self.figures["commit_failures"] += 1
                log.warning("offset commit failed after a durable write (will be redelivered): %s", exc)
            for h, k in hours.items():
                self.figures["hours"][h] = self.figures["hours"].get(h, 0) + k
            self.figures["landed"] += n
            self.figures["batches"] += 1
            self.figures["bronze_objects"] += len(uris)

    def drain(self) -> None:
        """Write and commit everything polled so far (before partitions are revoked, and at the end)."""
        self._submit()
        self._commit_written(block_until=0)

    def run(self) -> dict:
        opts = self.options
        clock = time.perf_counter
        t_start = clock()
        batch_started = None
        tail_flush = 0.0
        try:
            polled = self._wait_for_assignment()
            t0, cpu0 = clock(), time.process_time()
            last_record = t0
            total_seen = 0
            while True:
                for recs in polled.values():
                    self.batch.extend(recs)
                    total_seen += len(recs)
                now = clock()
                if polled:
                    last_record = now
                    tail_flush = 0.0
                    batch_started = batch_started or now
                done = total_seen >= opts.max_records or (not polled and now - last_record >= opts.max_wait_s)
                if self.batch and (done or len(self.batch) >= opts.batch_records or now - batch_started >= opts.batch_wait_s):
                    self._submit()
                    batch_started = None
                if done or (not polled and self.pending):
                    self._commit_written(block_until=0)  # idle: finish the writes
                    if not polled:  # a write after the last record: busy time, not idle time
                        tail_flush += clock() - now
                else:
                    self._commit_written()
                if done:
                    break
                room = min(opts.batch_records - len(self.batch), opts.max_records - total_seen)
                polled = self.consumer.poll(timeout_ms=200, max_records=max(1, min(room, 50_000)))
            # Busy time: from the first poll after the join to the last record, plus the writes after it
            # (the join and the final idle wait are not landing work).
            active_s = max(last_record - t0 + tail_flush, 1e-6)
            cpu_s = max(time.process_time() - cpu0, 1e-6)  # this process, all threads: robust on a busy machine
        finally:
            self.closing = True  # a revocation during close must not hand work to a stopped writer
            self.writer.shutdown(wait=True)
            self.consumer.close(autocommit=False)
        landed = self.figures["landed"]
        self.figures.update(
            seconds=round(clock() - t_start, 2),
            active_seconds=round(active_s, 3),
            events_per_s=round(landed / active_s) if landed else 0,
            cpu_seconds=round(cpu_s, 3),
            events_per_cpu_s=round(landed / cpu_s) if landed else 0,
        )
        return self.figures


from kafka import ConsumerRebalanceListener  # noqa: E402


class _Revoked(ConsumerRebalanceListener):
    """Before the group takes partitions away, land and commit what was polled from them."""

    def __init__(self, lander: "Lander"):
        self.lander = lander

    def on_partitions_revoked(self, revoked) -> None:
        if revoked and hasattr(self.lander, "pending") and not getattr(self.lander, "closing", False):
            self.lander.drain()

    def on_partitions_assigned(self, assigned) -> None:
        pass


def land(settings: Settings, store, options: LandingOptions | None = None) -> dict:
    return Lander(settings, store, options).run()


def land_interval(ctx: RunContext) -> dict:
    """Stage entry (land_bronze with source=kafka): land what the topic holds, report per hour."""
    from mdp.core.storage import check_s3

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

    from mdp.core.settings import get_settings
    from mdp.core.storage import store_for

    logging.basicConfig(level=os.environ.get("MDP_LOG_LEVEL", "WARNING"))
    settings = get_settings()
    figures = land(settings, store_for(settings))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
