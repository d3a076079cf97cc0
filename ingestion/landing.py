"""Kafka -> Bronze landing: a consumer group reads bounded batches, writes each batch to Bronze
atomically, and commits the offsets only after the write is durable.

Guarantees: at least once. A crash after the write and before the commit redelivers the batch on
the next run; the redelivered copy lands again (under a name from its own offsets) and Silver
drops the duplicate event ids. Nothing is committed that is not in Bronze, so nothing is lost.

Records land in the Bronze hour of their Kafka timestamp (broker or producer time). Only committed
records land (read_committed): a run lands what precedes a transaction still open, stops after
`max_wait_s` short of its snapshot, and a later run lands the rest once it is committed.

Each creation of a topic is a lifetime with its own Kafka topic id; Bronze object names and the
`topic` column carry it (mdp.core.lake.bronze_topic), so a recreated topic, whose offsets restart at
0, never takes an old lifetime's names or positions. An existing object is never replaced by other
records: the landing stops instead (Spark's file source would never read them).

Two ways to run:
- A landing run (`land`, the land_bronze stage, `mdp kafka land`) ends. When it starts it takes a
  snapshot of the end offsets of the topic's partitions, and it stops once it has landed and
  committed every record below them (it pauses a partition that reached its end, and leaves
  records past the snapshot to the next run). So even a producer that never pauses gives a
  finite task. It also stops after `max_records`, or when nothing arrived for `max_wait_s` (a
  guard, should a partition never reach its snapshot).
- A follower (`follow`, `mdp land --follow`) runs until SIGTERM/SIGINT, like a Kafka-to-S3 sink:
  it flushes a batch every `batch_records` records or `batch_wait_s` seconds, commits after each
  durable write, logs one line per flush, and on a stop signal lands and commits what it polled.

Options come from the environment (they tune one process, not the platform):
  MDP_LANDING_MAX_WAIT_S (5)       a run stops after this long without a record
  MDP_LANDING_MAX_RECORDS (10M)    a run stops after this many records
  MDP_LANDING_BATCH_RECORDS (50k)  records per Bronze write + commit
  MDP_LANDING_BATCH_WAIT_S (2; following: 30)  write a partial batch after this long
  MDP_LANDING_GROUP (mdp-landing-<topic>)
  MDP_LANDING_JOIN_TIMEOUT_S (60)  Unavailable when the group gives no partitions within this long
  MDP_LANDING_STATUS_FILE          a JSON status file, rewritten every second or so (probes read its age)
  MDP_TEST_CRASH_AFTER_WRITE=1     test hook: SIGKILL this process right after the first durable write
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from kafka import ConsumerRebalanceListener

from mdp.core.context import RunContext, StageError
from mdp.core.errors import MdpError, Unavailable
from mdp.core.lake import Interval, hour_floor
from mdp.core.settings import ConfigError, Settings
from mdp.core.storage import Store

if TYPE_CHECKING:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
FOLLOW_BATCH_WAIT_S = 30.0  # a follower's default flush interval: fewer, larger Bronze objects


@dataclass
class LandingOptions:
    max_wait_s: float = 5.0
    max_records: int = 10_000_000
    batch_records: int = 50_000
    batch_wait_s: float = 2.0
    group: str | None = None
    join_timeout_s: float = 60.0
    status_file: str | None = None

    @classmethod
    def from_env(cls, follow: bool = False, **overrides: Any) -> LandingOptions:
        values: dict = {"batch_wait_s": FOLLOW_BATCH_WAIT_S} if follow else {}
        for f in fields(cls):
            raw = os.environ.get(f"MDP_LANDING_{f.name.upper()}")
            if raw is None:
                continue
            try:
                values[f.name] = (
                    raw if f.name in ("group", "status_file") else (float(raw) if f.name.endswith("_s") else int(raw))
                )
            except ValueError:
                raise ConfigError(f"MDP_LANDING_{f.name.upper()}: {raw!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        opts = cls(**values)
        if opts.batch_records < 1 or opts.batch_wait_s <= 0:
            raise ConfigError("MDP_LANDING_BATCH_RECORDS and MDP_LANDING_BATCH_WAIT_S must be positive")
        return opts

    def group_id(self, topic: str) -> str:
        return self.group or f"mdp-landing-{topic}"


def consumer_config(settings: Settings, group_id: str, batch_records: int) -> dict:
    from ingestion.producer import bootstrap_timeout_ms

    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "bootstrap_timeout_ms": bootstrap_timeout_ms(settings),
        "group_id": group_id,
        "enable_auto_commit": False,  # commit only after Bronze is durable
        # A transactional producer's records land once committed, never while open or after an abort.
        "isolation_level": "read_committed",
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


def topic_id(consumer: KafkaConsumer, topic: str) -> str | None:
    """The id of this creation of the topic (Metadata v10+, Kafka 2.8+), as 32 hex digits; None if the
    broker gives none. kafka-python keeps it in the consumer's cluster metadata (no public getter)."""
    cluster = getattr(consumer, "_cluster", None)
    tid = cluster.topic_id(topic) if cluster is not None and hasattr(cluster, "topic_id") else None
    return tid.hex if tid is not None and tid.int else None  # the all-zero id means "none"


def _record_time(rec) -> datetime:
    ts = rec.timestamp
    if ts is None or ts < 0:
        return datetime.now(UTC)
    return datetime.fromtimestamp(ts / 1000, UTC)


def _warm_up() -> None:
    """Pay one-off import costs (pyarrow converts tz-aware datetimes through pandas) before timing."""
    import pyarrow as pa

    pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC"))


def _ranges(offsets: dict) -> str:
    return " ".join(f"p{p}:{a}-{b}" for p, (a, b) in sorted(offsets.items()))


@dataclass
class Tally:
    """What a lander has landed and committed so far: the first figures of its report."""

    landed: int = 0
    batches: int = 0
    bronze_objects: int = 0
    commit_failures: int = 0
    hours: dict[str, int] = field(default_factory=dict)  # records per Bronze hour ("%Y-%m-%dT%H")


class _Pending(NamedTuple):
    """A batch handed to the writer, waiting for its offsets to be committed."""

    future: Future[tuple[list[str], dict[str, int]]]
    offsets: dict  # TopicPartition -> OffsetAndMetadata: the commit once the write returned
    n: int
    ranges: dict[int, tuple[int, int]]
    t_submit: float


@dataclass
class _Progress:
    """How a landing loop ended, and the time it spent landing."""

    stopped_by: str | None  # signal | snapshot | max_records | idle
    active_s: float  # from the first poll after the join to the last record, plus the writes after it
    cpu_s: float  # this process, all threads: robust on a busy machine


class Lander:
    """One consumer-group member that lands batches into Bronze.

    Decoding (the consumer, main thread) and writing (one writer thread) overlap: while batch N is
    written, batch N+1 is fetched. Offsets are committed by the main thread (the consumer is not
    thread-safe), in batch order, and only for batches whose write has returned.
    """

    def __init__(self, settings: Settings, store: Store, options: LandingOptions | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from kafka import KafkaConsumer
        from kafka.errors import KafkaConnectionError, KafkaTimeoutError

        from ingestion.producer import require_bootstrap, unreachable

        bootstrap = require_bootstrap(settings, "landing from Kafka (source=kafka)")
        self.settings, self.store = settings, store
        self.options = options or LandingOptions.from_env()
        self.topic = settings.topic
        self._unreachable = lambda exc: unreachable(bootstrap, exc)
        try:
            self.consumer = KafkaConsumer(
                **consumer_config(settings, self.options.group_id(self.topic), self.options.batch_records)
            )
            partitions = self.consumer.partitions_for_topic(self.topic)
        except (KafkaTimeoutError, KafkaConnectionError, OSError) as exc:
            if hasattr(self, "consumer"):
                self.consumer.close(autocommit=False)
            raise self._unreachable(exc) from None
        if not partitions:
            self.consumer.close(autocommit=False)
            raise ConfigError(
                f"Kafka at {bootstrap} has no topic {self.topic!r} (kafka_topic, MDP_KAFKA_TOPIC): "
                "create it with `mdp services bootstrap`, or produce to it first"
            )
        self.partitions = sorted(partitions)
        # The topic's lifetime: Bronze names and positions carry it, since a recreated topic's
        # offsets start at 0 again (see mdp.core.lake.bronze_topic).
        self.topic_id = topic_id(self.consumer, self.topic)
        if self.topic_id is None:
            log.warning(
                "Kafka at %s gives no topic id for %r: Bronze cannot tell a recreated topic's records "
                "from the old ones (a batch that would take an old object's name is refused)",
                bootstrap,
                self.topic,
            )
        self.assigned: set | None = None  # set when the group gives us partitions; None while rebalancing
        self.end: dict | None = None  # the snapshot of end offsets a bounded run stops at
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        _warm_up()
        self.batch: list = []
        self.batch_ranges: dict[int, tuple[int, int]] = {}  # partition -> (first, last) offset in the batch
        self.pending: deque[_Pending] = deque()  # in submission order
        self.committed: dict[int, int] = {}
        self.closing = False
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-writer")
        self.tally = Tally()
        self._seen = 0  # records polled by this run
        self._status_at = 0.0

    # ---- the snapshot a bounded run stops at ---------------------------------------------------
    def _snapshot_end_offsets(self) -> dict:
        """Each partition's end offset now: the high watermark of a fetch, read without joining the group.

        ListOffsets(latest) alone is not enough: tansu 0.6 answers it with the last batch's base
        offset + 1, short of the log end. A fetch from that offset returns the high watermark, which
        every broker reports right; the larger of the two is the snapshot.
        """
        from kafka import KafkaConsumer
        from kafka.errors import KafkaConnectionError, KafkaTimeoutError
        from kafka.structs import TopicPartition

        from ingestion.producer import bootstrap_timeout_ms

        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        probe = None
        try:
            listed = self.consumer.end_offsets(tps)
            probe = KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                enable_auto_commit=False,
                bootstrap_timeout_ms=bootstrap_timeout_ms(self.settings),
                fetch_max_bytes=1 << 20,
                max_partition_fetch_bytes=1 << 20,
                fetch_max_wait_ms=50,
            )
            probe.assign(tps)
            for tp in tps:
                probe.seek(tp, listed[tp])
            deadline = time.monotonic() + self.settings.connect_timeout_s
            while any(probe.highwater(tp) is None for tp in tps):
                if time.monotonic() > deadline:
                    missing = [tp.partition for tp in tps if probe.highwater(tp) is None]
                    raise Unavailable(
                        f"Kafka at {self.settings.kafka_bootstrap} (kafka_bootstrap, MDP_KAFKA_BOOTSTRAP): "
                        f"no high watermark for partitions {missing} of {self.topic!r} within "
                        f"{self.settings.connect_timeout_s:.0f}s"
                    )
                probe.poll(timeout_ms=100)  # records are dropped: only the high watermark is wanted
            return {tp: max(listed[tp], probe.highwater(tp)) for tp in tps}
        except (KafkaTimeoutError, KafkaConnectionError, OSError) as exc:
            raise self._unreachable(exc) from None
        finally:
            if probe is not None:
                probe.close(autocommit=False)

    def _take(self, polled: dict) -> int:
        """Add polled records to the batch; in a bounded run, drop those at or past the snapshot."""
        n = 0
        for tp, recs in polled.items():
            if self.end is not None:
                end = self.end.get(tp, 0)  # a partition created after the snapshot is not this run's
                if recs and recs[-1].offset >= end:
                    recs = [r for r in recs if r.offset < end]  # left uncommitted: the next run lands them
            if recs:
                # A partition's records arrive in offset order: its range in the batch is first..last.
                first = self.batch_ranges.get(tp.partition, (recs[0].offset,))[0]
                self.batch_ranges[tp.partition] = (first, recs[-1].offset)
                self.batch.extend(recs)
                n += len(recs)
        return n

    def _reached_snapshot(self) -> bool:
        """True when every partition we own is read up to the snapshot; pauses the ones that are."""
        if self.assigned is None or self.end is None:
            return False  # mid-rebalance: do not judge an assignment we do not have yet (or a follower: no snapshot)
        paused = self.consumer.paused()
        done = True
        for tp in self.assigned:
            if tp in paused:
                continue
            if self.consumer.position(tp) >= self.end.get(tp, 0):
                self.consumer.pause(tp)  # nothing more to fetch from it in this run
            else:
                done = False
        return done

    def _behind_snapshot(self) -> int:
        if self.end is None or not self.assigned:
            return 0
        behind = 0
        for tp in self.assigned:
            try:
                behind += max(0, self.end.get(tp, 0) - self.consumer.position(tp))
            except Exception:
                pass
        return behind

    # ---- the group ---------------------------------------------------------------------------------
    def _wait_for_assignment(self, should_stop: Callable[[], bool] | None = None) -> dict:
        """Join the group; returns records polled while joining (not to be dropped)."""
        from kafka.errors import KafkaConnectionError, KafkaTimeoutError

        deadline = time.monotonic() + self.options.join_timeout_s
        polled: dict = {}
        while time.monotonic() < deadline:
            try:
                got = self.consumer.poll(timeout_ms=200)
            except (KafkaTimeoutError, KafkaConnectionError) as exc:
                raise self._unreachable(exc) from None
            for tp, recs in got.items():
                polled.setdefault(tp, []).extend(recs)
            if self.assigned is not None or (should_stop is not None and should_stop()):
                return polled
        raise Unavailable(
            f"Kafka at {self.settings.kafka_bootstrap} (kafka_bootstrap, MDP_KAFKA_BOOTSTRAP): no partition "
            f"assignment for group {self.options.group_id(self.topic)!r} on {self.topic!r} within "
            f"{self.options.join_timeout_s:.0f}s"
        )

    # ---- writing and committing --------------------------------------------------------------------
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
        uris = write_bronze(
            self.settings,
            self.store,
            records,
            source="kafka",
            topic=self.topic,
            topic_id=self.topic_id,
            refuse_changes=True,
        )
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
        ranges, self.batch_ranges = self.batch_ranges, {}
        if not batch:
            return
        now_id = topic_id(self.consumer, self.topic)
        if now_id and self.topic_id and now_id != self.topic_id:
            # Recreated under a running lander: whose lifetime these records are is unknown. Land
            # nothing, commit nothing; a new run lands the new topic under its own id.
            raise MdpError(
                f"Kafka topic {self.topic!r} was recreated while landing (topic id {self.topic_id} "
                f"is now {now_id}): nothing of this batch was landed; run the landing again"
            )
        offsets = {
            TopicPartition(self.topic, p): OffsetAndMetadata(last + 1, "", -1) for p, (_, last) in ranges.items()
        }
        self.pending.append(
            _Pending(self.writer.submit(self._write, batch), offsets, len(batch), ranges, time.perf_counter())
        )
        self._commit_written(block_until=1)

    def _commit_written(self, block_until: int = 0) -> None:
        """Commit the offsets of finished writes, in order; block while more than `block_until` are pending."""
        from kafka.errors import CommitFailedError

        while self.pending and (len(self.pending) > block_until or self.pending[0][0].done()):
            future, offsets, n, ranges, t_submit = self.pending.popleft()
            uris, hours = future.result()  # a failed write raises here, before any commit
            try:
                self.consumer.commit(offsets)
                committed = True
                for tp, om in offsets.items():
                    self.committed[tp.partition] = om.offset
            except CommitFailedError as exc:
                # The group moved the partitions on: the batch is in Bronze and is redelivered to the
                # new owner; Silver drops the duplicate event ids. Nothing is lost.
                committed = False
                self.tally.commit_failures += 1
                log.warning("offset commit failed after a durable write (will be redelivered): %s", exc)
            for h, k in hours.items():
                self.tally.hours[h] = self.tally.hours.get(h, 0) + k
            self.tally.landed += n
            self.tally.batches += 1
            self.tally.bronze_objects += len(uris)
            log.info(
                "flush: %d records (%s) -> %d Bronze objects in %.2fs; %s",
                n,
                _ranges(ranges),
                len(uris),
                time.perf_counter() - t_submit,
                "committed" if committed else "commit FAILED (will be redelivered)",
            )
            self._write_status("flushed", force=True)

    def drain(self) -> None:
        """Write and commit everything polled so far (before partitions are revoked, and at the end)."""
        self._submit()
        self._commit_written(block_until=0)

    def _write_status(self, state: str, force: bool = False) -> None:
        """The status file (for probes and people): rewritten atomically, at most about once a second."""
        path = self.options.status_file
        now = time.monotonic()
        if not path or (not force and now - self._status_at < 1.0):
            return
        self._status_at = now
        body = {
            "state": state,
            "topic": self.topic,
            "group": self.options.group_id(self.topic),
            "polled": self._seen,
            "landed": self.tally.landed,
            "batches": self.tally.batches,
            "committed": {str(p): o for p, o in sorted(self.committed.items())},
            "assigned": sorted(tp.partition for tp in self.assigned) if self.assigned else [],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(body, fh)
        os.replace(tmp, path)

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self, follow: bool = False, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Land until the snapshot is reached (a run), or until `should_stop()` (a follower)."""
        from kafka.errors import KafkaConnectionError, KafkaTimeoutError

        t_start = time.perf_counter()
        self._seen = 0
        try:
            if not follow:
                self.end = self._snapshot_end_offsets()  # before the join: the topic as the task found it
            polled = self._wait_for_assignment(should_stop)
            progress = self._land(polled, follow, should_stop)
            behind = self._behind_snapshot() if progress.stopped_by != "snapshot" else 0
        except (KafkaTimeoutError, KafkaConnectionError) as exc:
            # The broker went away (a poll, a position, a commit): what was written and not
            # committed is redelivered to the next run. Retryable.
            raise self._unreachable(exc) from None
        finally:
            self.closing = True  # a revocation during close must not hand work to a stopped writer
            self.writer.shutdown(wait=True)
            self.consumer.close(autocommit=False)
        return self._report(progress, behind, time.perf_counter() - t_start)

    def _land(self, polled: dict, follow: bool, should_stop: Callable[[], bool] | None) -> _Progress:
        """Poll, batch, write and commit until a stop reason holds; the last batch is written and committed."""
        opts = self.options
        clock = time.perf_counter
        t0, cpu0 = clock(), time.process_time()
        last_record = t0
        batch_started: float | None = None
        tail_flush = 0.0
        while True:
            got = self._take(polled)
            self._seen += got
            now = clock()
            if got:
                last_record = now
                tail_flush = 0.0
                batch_started = batch_started or now
            stopped_by = self._stop_reason(follow, should_stop, got, now - last_record)
            done = stopped_by is not None
            batch_age = now - (batch_started if batch_started is not None else now)
            if self.batch and (done or len(self.batch) >= opts.batch_records or batch_age >= opts.batch_wait_s):
                self._submit()
                batch_started = None
            if done or (not got and self.pending):
                self._commit_written(block_until=0)  # idle: finish the writes
                if not got:  # a write after the last record: busy time, not idle time
                    tail_flush += clock() - now
            else:
                self._commit_written()
            if done:
                break
            self._write_status("following" if follow else "landing")
            room = opts.batch_records - len(self.batch)
            if not follow:
                room = min(room, opts.max_records - self._seen)
            polled = self.consumer.poll(timeout_ms=200, max_records=max(1, min(room, 50_000)))
        # Busy time: the join and the final idle wait are not landing work.
        return _Progress(
            stopped_by,
            active_s=max(last_record - t0 + tail_flush, 1e-6),
            cpu_s=max(time.process_time() - cpu0, 1e-6),
        )

    def _stop_reason(self, follow: bool, should_stop: Callable[[], bool] | None, got: int, idle_s: float) -> str | None:
        """Why the loop stops now, or None: a stop signal; in a bounded run also the snapshot
        reached, `max_records`, or `max_wait_s` without a record."""
        if should_stop is not None and should_stop():
            return "signal"
        if follow:
            return None
        if self._reached_snapshot():
            return "snapshot"
        if self._seen >= self.options.max_records:
            return "max_records"
        if not got and idle_s >= self.options.max_wait_s:
            return "idle"
        return None

    def _report(self, progress: _Progress, behind: int, seconds: float) -> dict[str, Any]:
        """The run's figures: the tally, why it stopped, where it stopped, and its rates."""
        if progress.stopped_by == "idle" and behind:
            log.warning(
                "landing stopped after %.0fs without a record, %d records short of its snapshot "
                "(the next run lands them)",
                self.options.max_wait_s,
                behind,
            )
        landed, active_s, cpu_s = self.tally.landed, progress.active_s, progress.cpu_s
        figures = {
            **asdict(self.tally),
            "stopped_by": progress.stopped_by,
            "snapshot": {str(tp.partition): o for tp, o in sorted(self.end.items())} if self.end is not None else None,
            "behind_snapshot": behind,
            "committed": {str(p): o for p, o in sorted(self.committed.items())},
            "seconds": round(seconds, 2),
            "active_seconds": round(active_s, 3),
            "events_per_s": round(landed / active_s) if landed else 0,
            "cpu_seconds": round(cpu_s, 3),
            "events_per_cpu_s": round(landed / cpu_s) if landed else 0,
        }
        self._write_status("stopped", force=True)
        return figures


class _Rebalance(ConsumerRebalanceListener):
    """Before the group takes partitions away, land and commit what was polled from them; track
    what we own, so a bounded run judges its snapshot only on a settled assignment."""

    def __init__(self, lander: Lander):
        self.lander = lander

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        lander = self.lander
        if revoked and hasattr(lander, "pending") and not lander.closing:
            lander.drain()
        lander.assigned = None

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Eager assignment: `assigned` is the whole new set (read it from the consumer to be sure).
        self.lander.assigned = set(self.lander.consumer.assignment())


def land(settings: Settings, store: Store, options: LandingOptions | None = None) -> dict:
    """One landing run: up to the end offsets it found when it started (see the module docstring)."""
    return Lander(settings, store, options).run()


def follow(
    settings: Settings,
    store: Store,
    options: LandingOptions | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict:
    """Land continuously until `should_stop()` returns True; then land and commit what was polled."""
    return Lander(settings, store, options or LandingOptions.from_env(follow=True)).run(
        follow=True, should_stop=should_stop
    )


def land_interval(ctx: RunContext) -> dict:
    """Stage entry (land_bronze with source=kafka): land what the topic held when it started."""
    from mdp.core.storage import check_s3

    check_s3(ctx.settings)  # a wrong key or a missing bucket fails here, naming the endpoint
    try:
        figures = land(ctx.settings, ctx.store)
    except MdpError:
        raise
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        if isinstance(exc, BotoConnectionError):
            raise Unavailable(
                f"Bronze write to S3 at {ctx.settings.s3_endpoint} (s3_endpoint, MDP_S3_ENDPOINT) failed: {exc}"
            ) from None
        if isinstance(exc, (ClientError, BotoCoreError)):
            raise StageError(f"Bronze write to S3 at {ctx.settings.s3_endpoint} failed: {exc}") from None
        raise
    interval: Interval = ctx.interval
    in_interval = sum(
        n
        for h, n in figures["hours"].items()
        if interval.start <= datetime.fromisoformat(h + ":00+00:00") < interval.end
    )
    figures["in_interval"] = in_interval
    figures["outside_interval"] = figures["landed"] - in_interval
    return figures


def main(argv: list[str] | None = None) -> int:
    """`python -m ingestion.landing`: one landing run with settings from the environment (MDP_*)."""
    from mdp.core.settings import get_settings
    from mdp.core.storage import store_for

    logging.basicConfig(level=os.environ.get("MDP_LOG_LEVEL", "WARNING"))
    settings = get_settings()
    figures = land(settings, store_for(settings))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
