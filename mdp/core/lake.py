"""Lake layout, hourly intervals, the writer's lease, and Parquet helpers.

    bronze/<entity>/ingest_date=YYYY-MM-DD/ingest_hour=HH/part-<source>-p<partition>-o<first>-<last>.parquet
    silver/<entity>/<table>/, gold/<entity>/<table>/   Delta tables (mdp/core/tables.py)

Bronze is plain Parquet in hour partitions: it only grows, and every object is immutable. Silver
and Gold are Delta Lake tables committed by delta-rs (mdp.core.tables); one writer per dataset
holds the Lease below.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from mdp.core.errors import Busy
from mdp.core.settings import Settings
from mdp.core.storage import LocalStore, Store, join, store_for

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

# Bronze is raw and unchanged: the message bytes plus where and when they came from.
BRONZE_SCHEMA = pa.schema(
    [
        ("value", pa.binary()),
        ("key", pa.binary()),
        ("source", pa.string()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("ingest_ts", pa.timestamp("us", tz="UTC")),
    ]
)


def hour_floor(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(minute=0, second=0, microsecond=0)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Interval:
    """A half-open range of ingest hours [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def hour_of(cls, ts: datetime) -> Interval:
        start = hour_floor(ts)
        return cls(start, start + timedelta(hours=1))

    @classmethod
    def parse(cls, since: str | None, until: str | None, now: datetime | None = None) -> Interval:
        start = hour_floor(datetime.fromisoformat(since)) if since else hour_floor(now or utcnow())
        end = hour_floor(datetime.fromisoformat(until)) if until else start + timedelta(hours=1)
        if end <= start:
            raise ValueError(f"--until ({end:%Y-%m-%dT%H}) must be after --since ({start:%Y-%m-%dT%H})")
        return cls(start, end)

    def hours(self) -> list[datetime]:
        n = int((self.end - self.start).total_seconds() // 3600)
        return [self.start + timedelta(hours=i) for i in range(n)]

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%dT%H:00Z}, {self.end:%Y-%m-%dT%H:00Z})"


# ---- Bronze ------------------------------------------------------------------------------------------
def bronze_table_uri(settings: Settings) -> str:
    return join(settings.layer_uri("bronze"), settings.data_contract.entity)


def bronze_partition(hour: datetime) -> str:
    return f"ingest_date={hour:%Y-%m-%d}/ingest_hour={hour:%H}"


def bronze_topic(topic: str, topic_id: str | None = None) -> str:
    """Bronze's `topic` column: the name, and for Kafka the topic's lifetime, `<name>@<topic id>`.

    A recreated topic (`mdp services down && up` empties the broker) restarts at offset 0: only its
    id tells its records from the old lifetime's at the same (partition, offset). The id rides in
    a column the quarantine's position key already holds, so the schema is unchanged. '@' cannot
    occur in a Kafka topic name."""
    return f"{topic}@{topic_id}" if topic_id else topic


def bronze_file_name(source: str, partition: int, first: int, last: int, topic_id: str | None = None) -> str:
    # Deterministic names: a redelivered batch with the same bounds lands the same object, never a
    # second one. The topic id keeps a recreated topic's objects from taking an old lifetime's names; names
    # without one (written before it, or by the other sources) are read as before.
    lifetime = f"-t{topic_id}" if topic_id else ""
    return f"part-{source}{lifetime}-p{partition}-o{first:012d}-{last:012d}.parquet"


def bronze_files_in(settings: Settings, interval: Interval, store: Store | None = None) -> list[str]:
    """URIs of the Bronze objects in the interval's hour partitions (what a backfill reprocesses)."""
    store = store or store_for(settings)
    base = bronze_table_uri(settings)
    out = []
    for hour in interval.hours():
        part = join(base, bronze_partition(hour))
        out += [join(part, f) for f in store.list_files(part) if f.endswith(".parquet")]
    return out


def all_bronze_hours(settings: Settings, store: Store | None = None) -> list[datetime]:
    store = store or store_for(settings)
    base = bronze_table_uri(settings)
    hours = []
    for d in store.list_dirs(base):
        if not d.startswith("ingest_date="):
            continue
        for h in store.list_dirs(join(base, d)):
            if h.startswith("ingest_hour="):
                hours.append(datetime.fromisoformat(f"{d.split('=')[1]}T{h.split('=')[1]}:00+00:00"))
    return sorted(hours)


# ---- the writer's lease ------------------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


class Lease:
    """One writer per dataset: a lease object created with put-if-absent, renewed by compare-and-swap
    while the holder works, and released at the end.

    No two hosts' clocks are compared. The holder fences itself: `check()` fails once `ttl_s` has
    passed on its own clock since its last successful renewal (a renewal that errors, an S3 503 or
    a timeout, is retried and does not count). A newcomer takes a lease over only when its holder
    is a dead process on this host, or when the lease looks expired and has then not changed for
    `ttl_s` on the newcomer's own clock: by then the holder, if alive, has stopped writing."""

    def __init__(self, store: Store, uri: str, holder: str, ttl_s: float):
        self.store, self.uri, self.holder, self.ttl_s = store, uri, holder, ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.token: str | None = None
        self.lost = False
        self.last_error: str | None = None
        self._valid_until = 0.0  # time.monotonic() after which this holder must not write
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _doc(self) -> bytes:
        return json.dumps(
            {
                "holder": self.holder,
                "owner": self.owner,
                "expires_at": (utcnow() + timedelta(seconds=self.ttl_s)).isoformat(),
            }
        ).encode()

    def _dead_here(self, doc: dict) -> bool:
        host, pid, _ = doc["owner"].split(":", 2)
        return host == socket.gethostname() and not pid_alive(int(pid))

    def _unchanged_for_ttl(self, token: str) -> bool:
        """Watch a lease that looks expired: False as soon as its holder renews it."""
        deadline = time.monotonic() + self.ttl_s
        while time.monotonic() < deadline:
            self._stop.wait(min(self.ttl_s / 10, max(0.0, deadline - time.monotonic())))
            if self.store.get_versioned(self.uri)[1] != token:
                return False
        return True

    def _busy(self, doc: dict) -> Busy:
        return Busy(
            f"{self.uri} is held by run {doc['holder']!r} ({doc['owner']}) until {doc['expires_at']}: "
            "another writer is working on this dataset; retry when it is done"
        )

    def acquire(self) -> Lease:
        started, data = time.monotonic(), self._doc()
        if self.store.put_if_absent(self.uri, data):
            self.token = self.store.get_versioned(self.uri)[1]
        else:
            current, token = self.store.get_versioned(self.uri)
            doc = json.loads(current) if current else None
            if doc is not None and token is not None and not self._dead_here(doc):
                if datetime.fromisoformat(doc["expires_at"]) >= utcnow() or not self._unchanged_for_ttl(token):
                    raise self._busy(doc)
            started, data = time.monotonic(), self._doc()
            ok = self.store.put_if_match(self.uri, data, token) if token else self.store.put_if_absent(self.uri, data)
            if not ok:
                raise Busy(f"{self.uri}: another writer took the lease first; retry")
            self.token = self.store.get_versioned(self.uri)[1]
        self._valid_until = started + self.ttl_s
        self._thread = threading.Thread(target=self._renew, name="lease-renewal", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        wait = self.ttl_s / 3
        while not self._stop.wait(wait):
            started = time.monotonic()
            try:
                if self.token is None or not self.store.put_if_match(self.uri, self._doc(), self.token):
                    self.lost = True  # another writer took it: never retried
                    return
                self.token = self.store.get_versioned(self.uri)[1]
            except Exception as exc:  # a transient store error: retry soon; check() fences if it lasts
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("lease %s: renewal failed (%s); retrying", self.uri, self.last_error)
                wait = self.ttl_s / 10
                continue
            self._valid_until, self.last_error, wait = started + self.ttl_s, None, self.ttl_s / 3

    def check(self) -> None:
        """Before a commit: still ours?"""
        if self.lost:
            raise Busy(
                f"{self.uri}: this writer lost its lease (it lapsed and another writer took it); nothing was published"
            )
        if time.monotonic() >= self._valid_until:
            raise Busy(
                f"{self.uri}: this writer's lease lapsed (not renewed for {self.ttl_s:g} s: "
                f"{self.last_error or 'renewal stalled'}); nothing was published"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        current, _ = self.store.get_versioned(self.uri)
        if current and json.loads(current).get("owner") == self.owner:
            self.store.delete(self.uri)


def spark_uri(uri: str) -> str:
    """Spark speaks s3a:// for S3."""
    return "s3a://" + uri[len("s3://") :] if uri.startswith("s3://") else uri


def arrow_filesystem(settings: Settings) -> pafs.FileSystem:
    """A pyarrow filesystem for the lake (python stages read Parquet without a JVM)."""
    from pyarrow import fs

    if not settings.lake_is_s3:
        return fs.LocalFileSystem()
    from urllib.parse import urlparse

    endpoint = urlparse(settings.s3_endpoint or "")
    return fs.S3FileSystem(
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme or "http",
        access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        region=settings.s3_region,
        connect_timeout=settings.connect_timeout_s,
    )


def arrow_path(uri: str) -> str:
    """A lake URI as pyarrow's filesystems name it: a local path (taken literally, as the store
    does), or bucket/key."""
    from urllib.parse import urlparse

    if uri.startswith("file:"):
        return str(LocalStore._path(uri))
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        return f"{parsed.netloc}{parsed.path}"
    return uri


def read_parquet(settings: Settings, uri: str, columns: list[str] | None = None) -> pa.Table:
    import pyarrow.dataset as ds

    return ds.dataset(arrow_path(uri), format="parquet", filesystem=arrow_filesystem(settings)).to_table(
        columns=columns
    )


def parquet_rows(settings: Settings, uris: list[str]) -> int:
    """Rows in Parquet files or folders, from their footers alone: an independent count of what was written."""
    import pyarrow.dataset as ds

    if not uris:
        return 0
    fs = arrow_filesystem(settings)
    total = 0
    for uri in uris:
        dataset = ds.dataset(arrow_path(uri), format="parquet", filesystem=fs)
        total += sum(f.metadata.num_rows for f in dataset.get_fragments())
    return total
