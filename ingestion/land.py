"""land_bronze: bring the interval's events into Bronze from the configured source.

Sources are adapters chosen by `settings.source`; each writes Bronze in the same layout.
"""

from __future__ import annotations

from mdp.core.context import RunContext
from mdp.core.lake import bronze_partition, bronze_table_uri
from mdp.core.storage import join


def land_from_generator(ctx: RunContext) -> dict:
    """Embedded source: the generator writes each hour of the interval straight to Bronze."""
    from ingestion.bronze import RawRecord, write_bronze
    from ingestion.generator import generate_hour, ingest_time

    s = ctx.settings
    total, dirty = 0, 0
    for hour in ctx.interval.hours():
        events = generate_hour(s.seed, hour, s.events, s.dirty_fraction)
        part = join(bronze_table_uri(s), bronze_partition(hour))
        for name in ctx.store.list_files(part):  # the generator owns its files in the hour: rerun = replace
            if name.startswith("part-generator-"):
                ctx.store.delete(join(part, name))
        records = [
            RawRecord(e.message, e.customer_id.encode() or None, 0, i, ingest_time(hour, i, len(events)))
            for i, e in enumerate(events)
        ]
        write_bronze(s, ctx.store, records, source="generator", topic=s.topic)
        total += len(events)
        dirty += sum(e.dirty is not None for e in events)
    return {"landed": total, "dirty_generated": dirty}


def land_from_kafka(ctx: RunContext) -> dict:
    from ingestion.landing import land_interval

    return land_interval(ctx)


SOURCES = {"generator": land_from_generator, "kafka": land_from_kafka}


def run(ctx: RunContext) -> dict:
    return SOURCES[ctx.settings.source](ctx)
