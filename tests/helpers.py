"""Test helpers: write hand-made Bronze batches in the landing's exact layout."""

from __future__ import annotations

import json
from datetime import datetime

from ingestion.bronze import RawRecord, write_bronze
from ingestion.generator import generate_hour, ingest_time
from mdp.core.storage import store_for


def write_messages(settings, hour: datetime, messages: list[bytes], source: str = "test", first_offset: int = 0) -> None:
    records = [
        RawRecord(m, None, 0, first_offset + i, ingest_time(hour, i, len(messages))) for i, m in enumerate(messages)
    ]
    write_bronze(settings, store_for(settings), records, source=source, topic="customers")


def clean_events(seed: int, hour: datetime, n: int) -> list[dict]:
    return [json.loads(e.message) for e in generate_hour(seed, hour, n, dirty_fraction=0.0)]


def corrupt(events: list[dict], **changes) -> list[bytes]:
    """Apply `field=function(value)` to every event and serialise."""
    out = []
    for e in events:
        e = dict(e)
        for k, fn in changes.items():
            e[k] = fn(e.get(k))
        out.append(json.dumps(e).encode())
    return out
