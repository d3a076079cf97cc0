"""Lake layout: Bronze partitions, hourly intervals and versioned (atomically published) datasets.

bronze/customers/ingest_date=YYYY-MM-DD/ingest_hour=HH/part-<source>-p<partition>-o<first>-<last>.parquet
silver/customers/v=<version>/     silver/quarantine/v=<version>/    silver/batch/v=<version>/
silver/_CURRENT.json  (committed)  silver/_STAGED.json (written, awaiting the GX gate)
silver/_reports/gx/<version>/     validation JSON and Data Docs
gold/customer_features/v=<snapshot>/   gold/_CURRENT.json
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from mdp.core.settings import Settings
from mdp.core.storage import Store, join, store_for

ENTITY = "customers"

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


@dataclass(frozen=True)
class Interval:
    """A half-open range of ingest hours [start, end): what one run processes."""

    start: datetime
    end: datetime

    @classmethod
    def hour_of(cls, ts: datetime) -> "Interval":
        start = hour_floor(ts)
        return cls(start, start + timedelta(hours=1))

    @classmethod
    def parse(cls, since: str | None, until: str | None, now: datetime | None = None) -> "Interval":
        start = hour_floor(datetime.fromisoformat(since)) if since else hour_floor(now or datetime.now(UTC))
        end = hour_floor(datetime.fromisoformat(until)) if until else start + timedelta(hours=1)
        if end <= start:
            raise ValueError(f"--until ({end:%Y-%m-%dT%H}) must be after --since ({start:%Y-%m-%dT%H})")
        return cls(start, end)

    def hours(self) -> list[datetime]:
        n = int((self.end - self.start).total_seconds() // 3600)
        return [self.start + timedelta(hours=i) for i in range(n)]

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%dT%H:00Z}, {self.end:%Y-%m-%dT%H:00Z})"


def bronze_table_uri(settings: Settings) -> str:
    return join(settings.layer_uri("bronze"), ENTITY)


def bronze_partition(hour: datetime) -> str:
    return f"ingest_date={hour:%Y-%m-%d}/ingest_hour={hour:%H}"


def bronze_file_name(source: str, partition: int, first: int, last: int) -> str:
    # Deterministic names: a redelivered batch with the same bounds overwrites, never doubles.
    return f"part-{source}-p{partition}-o{first:012d}-{last:012d}.parquet"


def bronze_partitions_in(settings: Settings, interval: Interval, store: Store | None = None) -> list[str]:
    """URIs of the Bronze partitions of the interval that exist (the incremental read set)."""
    store = store or store_for(settings)
    base = bronze_table_uri(settings)
    out = []
    for hour in interval.hours():
        uri = join(base, bronze_partition(hour))
        if any(f.endswith(".parquet") for f in store.list_files(uri)):
            out.append(uri)
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


def new_version() -> str:
    # Sortable by time, unique across concurrent writers.
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


class VersionedDataset:
    """Several tables published together by writing one small pointer last.

    Data goes to <root>/<table>/v=<version>/; a version becomes visible only when the pointer
    (_CURRENT.json, or _STAGED.json awaiting validation) names it. A crash before the pointer
    leaves an unreferenced folder that readers never see and `gc` removes.
    """

    def __init__(self, settings: Settings, layer: str, tables: tuple[str, ...], store: Store | None = None):
        self.root = settings.layer_uri(layer)
        self.layer = layer
        self.tables = tables
        self.store = store or store_for(settings)

    def table_uri(self, table: str, version: str) -> str:
        return join(self.root, table, f"v={version}")

    def _pointer(self, name: str) -> dict | None:
        text = self.store.get_text(join(self.root, f"_{name}.json"))
        return json.loads(text) if text else None

    def current(self) -> dict | None:
        return self._pointer("CURRENT")

    def staged(self) -> dict | None:
        return self._pointer("STAGED")

    def _before_pointer(self) -> None:
        # Test hook (tests/reliability): MDP_TEST_CRASH_BEFORE_POINTER=<layer> SIGKILLs this process
        # after the data is written and before the pointer names it: the crash window to survive.
        if os.environ.get("MDP_TEST_CRASH_BEFORE_POINTER") == self.layer:
            os.kill(os.getpid(), signal.SIGKILL)

    def stage(self, version: str, manifest: dict) -> None:
        self._before_pointer()
        self.store.put_text(join(self.root, "_STAGED.json"), json.dumps({"version": version, **manifest}, indent=2, default=str))

    def commit(self, version: str, manifest: dict) -> None:
        self._before_pointer()
        history = (self.current() or {}).get("history", [])
        doc = {"version": version, **manifest, "history": ([version] + [h for h in history if h != version])[:10]}
        self.store.put_text(join(self.root, "_CURRENT.json"), json.dumps(doc, indent=2, default=str))

    def promote_staged(self) -> dict:
        staged = self.staged()
        if not staged:
            raise RuntimeError(f"nothing staged under {self.root}")
        version = staged.pop("version")
        self.commit(version, staged)
        self.store.delete(join(self.root, "_STAGED.json"))
        return {"version": version, **staged}

    def discard_staged(self) -> None:
        self.store.delete(join(self.root, "_STAGED.json"))

    def gc(self, keep: int = 3) -> list[str]:
        """Delete versions that no pointer names and that are not among the last `keep` commits."""
        live = set((self.current() or {}).get("history", [])[:keep])
        live |= {p["version"] for p in (self.current(), self.staged()) if p}
        removed = []
        for table in self.tables:
            for d in self.store.list_dirs(join(self.root, table)):
                if d.startswith("v=") and d[2:] not in live:
                    self.store.delete_prefix(join(self.root, table, d))
                    removed.append(f"{table}/{d}")
        return removed


def silver_dataset(settings: Settings, store: Store | None = None) -> VersionedDataset:
    return VersionedDataset(settings, "silver", ("customers", "quarantine", "batch"), store)


def gold_dataset(settings: Settings, store: Store | None = None) -> VersionedDataset:
    return VersionedDataset(settings, "gold", ("customer_features",), store)


def spark_uri(uri: str) -> str:
    """Spark speaks s3a:// for S3."""
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def arrow_filesystem(settings: Settings):
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


def read_parquet(settings: Settings, uri: str) -> pa.Table:
    import pyarrow.dataset as ds

    path = uri.removeprefix("file://").removeprefix("s3://")
    return ds.dataset(path, format="parquet", filesystem=arrow_filesystem(settings)).to_table()
