"""land_bronze: bring the interval's events into Bronze from the configured source.

Sources are adapters chosen by `settings.source`; each writes Bronze in the same layout:
- generator: synthetic customers events, straight to Bronze (embedded);
- file: the rows of `settings.input_file` (CSV or Parquet), straight to Bronze (`mdp run --input`);
- kafka: the landing consumes the topic; with `input_file` set, the file is produced to the topic
  first, so a run with a Kafka source takes the same path as a producer would.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mdp.core.context import RunContext
from mdp.core.contract import Contract
from mdp.core.errors import ConfigError
from mdp.core.lake import bronze_file_name, bronze_partition, bronze_table_uri
from mdp.core.storage import join


def check_generator_fits(contract: Contract) -> None:
    """The generator makes the bundled customers contract's events; another shape would all be quarantined."""
    from ingestion.generator import FIELDS

    missing = [f for f in FIELDS if f not in contract.names]
    if missing:
        raise ConfigError(
            f"source 'generator' (MDP_SOURCE) makes customers events, but contract {contract.entity!r} "
            f"(MDP_CONTRACT) has no {missing}: give a file (`mdp run --input FILE`, or MDP_SOURCE=file "
            "and MDP_INPUT_FILE) or use a Kafka source"
        )


def land_from_generator(ctx: RunContext) -> dict:
    """Embedded source: the generator writes each hour of the interval straight to Bronze."""
    from ingestion.bronze import RawRecord, write_bronze
    from ingestion.generator import generate_hour, ingest_time

    s = ctx.settings
    check_generator_fits(ctx.contract)
    if ctx.all_bronze:  # reprocess what Bronze holds; thirteen made-up hours between two real ones are not data
        return {"landed": 0, "dirty_generated": 0, "skipped": "--all reprocesses Bronze: the generator lands nothing"}
    total, dirty, already = 0, 0, 0
    for hour in ctx.interval.hours():
        # The generator numbers its records from 0 in every hour, so the hour and the parameters go in
        # the source's name: positions (source, partition, offset) stay unique across hours, the same
        # parameters make the same objects, and other parameters add new ones.
        params = hashlib.sha1(f"{s.seed}:{s.events}:{s.dirty_fraction}".encode()).hexdigest()[:8]
        source = f"generator-{hour:%Y%m%dT%H}-{params}"
        part = join(bronze_table_uri(s), bronze_partition(hour))
        mine = [n for n in ctx.store.list_files(part) if n.startswith(f"part-{source}-")]
        if mine == [bronze_file_name(source, 0, 0, s.events - 1)]:
            already += s.events  # deterministic: this hour's events are there, byte for byte
            continue
        for name in mine:  # a partial write of this hour: replace it
            ctx.store.delete(join(part, name))
        events = generate_hour(s.seed, hour, s.events, s.dirty_fraction)
        records = [
            RawRecord(e.message, e.customer_id.encode() or None, 0, i, ingest_time(hour, i, len(events)))
            for i, e in enumerate(events)
        ]
        write_bronze(s, ctx.store, records, source=source, topic=s.topic)
        total += len(events)
        dirty += sum(e.dirty is not None for e in events)
    return {"landed": total, "dirty_generated": dirty, **({"already_landed": already} if already else {})}


def input_path(ctx: RunContext) -> Path:
    """The input file (Settings requires one with source=file; a Kafka source asks only when one is set)."""
    assert ctx.settings.input_file is not None
    path = Path(ctx.settings.input_file)
    return path if path.is_absolute() else ctx.settings.home / path


def land_from_file(ctx: RunContext) -> dict:
    """The input file's rows, one event each, straight to Bronze (see ingestion/file_source.py).
    Their ingest time is now, whatever hours the run backfills: "future" is judged against it, and
    a file stamped with an old hour would have its recent events quarantined as future. Silver
    reads the file's objects as new ones in any case."""
    from ingestion.file_source import ingest_file

    figures = ingest_file(ctx.settings, ctx.store, input_path(ctx))
    return {"landed": figures["events"], **_file_figures(figures)}


def land_from_kafka(ctx: RunContext) -> dict:
    from ingestion.landing import land_interval

    produced = {}
    if ctx.settings.input_file:
        from ingestion.file_source import ingest_file

        produced = _file_figures(ingest_file(ctx.settings, ctx.store, input_path(ctx)))
    return {**land_interval(ctx), **produced}


def _file_figures(f: dict) -> dict:
    keep = ("file", "sha256", "rows", "bad_lines", "blanks", "event_ids_filled", "unknown_columns", "missing_required")
    return {f"input_{k}": f[k] for k in keep}


SOURCES = {"generator": land_from_generator, "kafka": land_from_kafka, "file": land_from_file}


def run(ctx: RunContext) -> dict:
    figures = SOURCES[ctx.settings.source](ctx)
    return {**figures, "nothing_new": True} if not figures.get("landed") else figures
