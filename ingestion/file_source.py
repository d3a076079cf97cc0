"""The file source: a CSV or Parquet file, one event per row (`mdp ingest FILE`, `mdp run --input FILE`).

Each row becomes a JSON object of every file column, as it is: a header the contract does not
name arrives as an unknown field and Silver quarantines the row with that reason, so nothing is
dropped here. CSV cells stay texts (Silver casts them to the contract's types); a blank cell (empty
or whitespace only) is sent as null and counted per column, so a non-nullable column quarantines
the row (missing:<col>) and a nullable one is imputed by the model. A CSV line with the wrong
number of fields is sent as its raw text: Silver quarantines it as not a JSON object, bytes kept.

The event id is a UUID derived from the file's content hash and the row's position, so ingesting
the same file again gives the same events and Silver drops them as exact copies. A file that has
the contract's event id column keeps its own ids (blank ones are filled). The event time is the
contract's event_time column when the file has it; otherwise the message has none and Silver
orders states by arrival (ingest time, then row position).

Where the events go follows the source: with a Kafka source (the local, compose and kind profiles)
they are produced to the topic, key = the primary key, and the landing brings them to Bronze;
otherwise (embedded) they are written to Bronze directly, in the landing's layout, with the
file's identity in the object names (part-file-<stem>-<hash>-p0-o<first>-<last>.parquet).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdp.core.contract import Contract
from mdp.core.contract_infer import is_blank
from mdp.core.errors import ConfigError
from mdp.core.settings import Settings
from mdp.core.storage import Store

if TYPE_CHECKING:
    from kafka import KafkaProducer

# Event ids of file rows live in their own UUID namespace (uuid5 of "<sha256>:<row>").
FILE_NAMESPACE = uuid.UUID("5b0c7f44-3c59-4d0e-9a43-6d1f0c2b7e11")
FORMATS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class FileData:
    """A file read whole: its header, its rows (in file order) and its identity."""

    path: Path
    format: str
    sha256: str
    columns: list[str]
    rows: list[list[Any]]  # CSV: texts; Parquet: typed values
    bad_lines: dict[int, str] = field(default_factory=dict)  # row position -> raw CSV text (wrong field count)

    @property
    def records(self) -> int:
        return len(self.rows) + len(self.bad_lines)

    @property
    def source(self) -> str:
        """The Bronze source name: the file's stem (filename-safe) and its content hash."""
        stem = re.sub(r"[^A-Za-z0-9_]+", "_", self.path.stem).strip("_")[:40] or "data"
        return f"file-{stem}-{self.sha256[:16]}"

    def column_values(self) -> dict[str, list[Any]]:
        return {c: [r[i] for r in self.rows] for i, c in enumerate(self.columns)}


# ---- reading ------------------------------------------------------------------------------------------
def file_format(path: Path, given: str | None = None) -> str:
    fmt = given or FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "parquet"):
        raise ConfigError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; give --format csv or parquet"
        )
    return fmt


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_csv(text: str) -> tuple[list[str], list[list[str]], dict[int, str]]:
    """(header, rows, bad lines by row position) of a CSV text; blank lines are not rows."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    bad: dict[int, str] = {}
    for fields in reader:
        if not fields or fields == [""]:
            continue
        if header is None:
            header = fields
            continue
        if len(fields) != len(header):
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow(fields)
            bad[len(rows) + len(bad)] = out.getvalue()
            continue
        rows.append(fields)
    if header is None:
        raise ConfigError("the file is empty: no header row")
    return header, rows, bad


def read_file(path: str | Path, fmt: str | None = None) -> FileData:
    """Read a CSV (every cell a text) or a Parquet file (typed values). Bad input: ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    fmt = file_format(path, fmt)
    digest = sha256_of(path)
    if fmt == "csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        try:
            columns, rows, bad = parse_csv(text)
        except csv.Error as exc:
            raise ConfigError(f"{path}: not a readable CSV ({exc})") from None
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise ConfigError(f"{path}: not a readable Parquet file ({exc})") from None
        columns = table.column_names
        cols = [table.column(c).to_pylist() for c in columns]
        rows = [list(r) for r in zip(*cols, strict=True)] if cols else []
        bad = {}
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise ConfigError(
            f"{path}: duplicate column names {dupes}: rename them (a row must map each name to one value)"
        )
    return FileData(path=path, format=fmt, sha256=digest, columns=columns, rows=rows, bad_lines=bad)


# ---- rows -> events (pure) ----------------------------------------------------------------------------
def event_id_for(sha256: str, position: int) -> str:
    """Deterministic: the same file (by content) and row position give the same id."""
    return str(uuid.uuid5(FILE_NAMESPACE, f"{sha256}:{position}"))


def _json_value(v: Any) -> Any:
    """A Parquet value as JSON: numbers and booleans as they are, times as ISO texts."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(v).decode()
    return v


@dataclass
class Events:
    messages: list[tuple[int, bytes | None, bytes]]  # (row position, key, value) in file order
    blanks: Counter  # column -> blank cells sent as null
    ids_filled: int

    def __len__(self) -> int:
        return len(self.messages)


def to_events(data: FileData, contract: Contract) -> Events:
    """One message per record of the file: a JSON object of every column, blanks as null."""
    eid, key_name = contract.event_id, contract.primary_key
    has_eid = eid in data.columns
    blanks: Counter = Counter()
    filled = 0
    out: list[tuple[int, bytes | None, bytes]] = []
    rows = iter(data.rows)
    for pos in range(data.records):
        if pos in data.bad_lines:
            out.append((pos, None, data.bad_lines[pos].encode()))
            continue
        row = next(rows)
        msg: dict[str, Any] = {}
        for name, value in zip(data.columns, row, strict=True):
            if is_blank(value):
                blanks[name] += 1
                msg[name] = None
            else:
                msg[name] = value if isinstance(value, str) else _json_value(value)
        if not has_eid or msg[eid] is None:
            msg[eid] = event_id_for(data.sha256, pos)
            filled += 1
            if has_eid:
                blanks[eid] -= 1  # filled, not sent blank
        key = msg.get(key_name)
        out.append(
            (
                pos,
                None if key is None else str(key).encode(),
                json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode(),
            )
        )
    return Events(out, +blanks, filled)


def header_report(data: FileData, contract: Contract) -> dict[str, list[str]]:
    """How the file's header meets the contract (the ingest goes on either way; Silver decides)."""
    names = set(contract.names)
    present = set(data.columns) | {contract.event_id}
    return {
        "unknown_columns": [n for n in data.columns if n not in names],
        "missing_required": [col.name for col in contract.columns if col.name not in present and not col.nullable],
        "missing_optional": [col.name for col in contract.columns if col.name not in present and col.nullable],
    }


# ---- I/O: Bronze or Kafka ----------------------------------------------------------------------------
def goes_to_kafka(settings: Settings) -> bool:
    """Events go where the configured source reads: the topic for a Kafka source, else Bronze."""
    return settings.source == "kafka"


def ingest_file(
    settings: Settings,
    store: Store,
    path: str | Path,
    fmt: str | None = None,
    at: datetime | None = None,
    producer: KafkaProducer | None = None,
) -> dict:
    """Send a file's rows as events (to the topic or to Bronze). Returns the figures it printed."""
    contract = settings.data_contract
    data = read_file(path, fmt)
    events = to_events(data, contract)
    figures: dict[str, Any] = {
        "file": str(data.path),
        "format": data.format,
        "sha256": data.sha256,
        "rows": data.records,
        "events": len(events),
        "bad_lines": len(data.bad_lines),
        "blanks": dict(sorted(events.blanks.items())),
        "event_ids_filled": events.ids_filled,
        "event_time": contract.event_time if contract.event_time in data.columns else None,
        **header_report(data, contract),
    }
    if not events.messages:
        return {**figures, "destination": None}
    if goes_to_kafka(settings):
        from ingestion.producer import make_producer, publish

        own = producer is None
        producer = producer or make_producer(settings)
        try:
            publish(producer, settings.topic, ((k, v) for _, k, v in events.messages))
        finally:
            if own:
                producer.close(timeout=10)
        return {**figures, "destination": f"kafka topic {settings.topic}"}

    from ingestion.bronze import RawRecord, write_bronze

    start = (at or datetime.now(UTC)).astimezone(UTC)
    # One microsecond apart: arrival order is file order, which orders states without an event time.
    records = [RawRecord(v, k, 0, pos, start + timedelta(microseconds=pos)) for pos, k, v in events.messages]
    # Bronze objects are immutable: the same file again within the hour has the same object name,
    # and its first landing stays (its ingest time orders the states; a rewrite would move it).
    written = write_bronze(
        settings, store, records, source=data.source, topic=settings.topic, refuse_changes=True, same_but=("ingest_ts",)
    )
    return {**figures, "destination": "bronze", "bronze_objects": written}
