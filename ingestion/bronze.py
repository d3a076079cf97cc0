"""Bronze writer shared by every source: raw bytes plus source metadata, one Parquet object per batch.

The object is built in memory and put in one call (a rename locally, a single PUT on S3), so a
Bronze file is either whole or absent. File names derive from the batch's source coordinates,
so a redelivered batch with the same bounds replaces its earlier copy instead of doubling it.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from mdp.core.lake import BRONZE_SCHEMA, bronze_file_name, bronze_partition, bronze_table_uri, hour_floor
from mdp.core.settings import Settings
from mdp.core.storage import Store, join


@dataclass(slots=True)
class RawRecord:
    value: bytes | None
    key: bytes | None
    partition: int
    offset: int
    ingest_ts: datetime


def write_bronze(settings: Settings, store: Store, records: list[RawRecord], source: str, topic: str) -> list[str]:
    """Write records to Bronze, one object per (ingest hour, source partition). Returns the URIs."""
    groups: dict[tuple[datetime, int], list[RawRecord]] = defaultdict(list)
    for r in records:
        groups[(hour_floor(r.ingest_ts), r.partition)].append(r)
    written = []
    base = bronze_table_uri(settings)
    for (hour, partition), rows in sorted(groups.items()):
        table = pa.table(
            {
                "value": [r.value for r in rows],
                "key": [r.key for r in rows],
                "source": [source] * len(rows),
                "topic": [topic] * len(rows),
                "partition": [partition] * len(rows),
                "offset": [r.offset for r in rows],
                "ingest_ts": [r.ingest_ts for r in rows],
            },
            schema=BRONZE_SCHEMA,
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        name = bronze_file_name(source, partition, rows[0].offset, rows[-1].offset)
        uri = join(base, bronze_partition(hour), name)
        store.put_bytes(uri, buf.getvalue())
        written.append(uri)
    return written
