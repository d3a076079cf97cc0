"""Bronze writer shared by every source: raw bytes plus source metadata, one Parquet object per batch.

The object is built in memory and put in one call (a rename locally, a single PUT on S3), so a
Bronze file is either whole or absent. File names derive from the batch's source coordinates
(for Kafka with the topic's id, its lifetime), so a redelivered batch with the same bounds replaces
its earlier copy instead of doubling it. Objects are immutable to their readers (Spark's file source
never reads a path twice): the Kafka landing refuses to replace one with other records.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from mdp.core.errors import StageError
from mdp.core.lake import BRONZE_SCHEMA, bronze_file_name, bronze_partition, bronze_table_uri, bronze_topic, hour_floor
from mdp.core.settings import Settings
from mdp.core.storage import Store, join


@dataclass(slots=True)
class RawRecord:
    value: bytes | None
    key: bytes | None
    partition: int
    offset: int
    ingest_ts: datetime


def write_bronze(
    settings: Settings,
    store: Store,
    records: list[RawRecord],
    source: str,
    topic: str,
    topic_id: str | None = None,
    refuse_changes: bool = False,
    same_but: tuple[str, ...] = (),
) -> list[str]:
    """Write records to Bronze, one object per (ingest hour, source partition). Returns the URIs.

    `topic_id` (Kafka's id of this creation of the topic) goes into the names and the `topic` column.
    With `refuse_changes`, an existing object of the same name must hold the same records (the
    columns `same_but` aside): it is then left as it is, and otherwise a StageError stops the write."""
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
                "topic": [bronze_topic(topic, topic_id)] * len(rows),
                "partition": [partition] * len(rows),
                "offset": [r.offset for r in rows],
                "ingest_ts": [r.ingest_ts for r in rows],
            },
            schema=BRONZE_SCHEMA,
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        name = bronze_file_name(source, partition, rows[0].offset, rows[-1].offset, topic_id)
        uri = join(base, bronze_partition(hour), name)
        if not (refuse_changes and _already_there(store, uri, table, same_but)):
            store.put_bytes(uri, buf.getvalue())
        written.append(uri)
    return written


def _already_there(store: Store, uri: str, table: pa.Table, same_but: tuple[str, ...] = ()) -> bool:
    """True if `uri` holds `table`'s records (a redelivery); False if it is absent; raises if it differs.

    A read before the put, not a conditional put: two writers of one name are two members of one
    group around a rebalance, and they write the same records. What this catches is a name taken
    by other records (a topic recreated on a broker without topic ids), which would be lost."""
    existing = store.get_bytes(uri)
    if existing is None:
        return False
    if pq.read_table(io.BytesIO(existing)).drop_columns(list(same_but)).equals(table.drop_columns(list(same_but))):
        return True
    raise StageError(
        f"Bronze object {uri} exists with other records: refusing to overwrite it (Spark would "
        "never read the new ones). Was the topic recreated on a broker without topic ids?"
    )
