"""The independent oracle in tests: bench/duckdb_pipeline.py computes Silver (state, quarantine, the
gate's batch), the run's figures and Gold from scratch over every Bronze object, in DuckDB, from
the contract alone (it imports nothing from spark_apps/). The Spark path runs incrementally, one
run at a time; after each run its published tables must equal the oracle's, row for row.

Where the two must disagree by design, the comparison says so (see `compare`):
- Gold's snapshot id and Silver's version ids are names, not content: never compared.
- The last tie of the arrival order (same ingest time, offset and partition, another source) is
  broken by a hash of the source in Spark and by its name in the oracle: the scenarios never
  create such a tie, so the lineage columns (_source, _partition, _offset, _ingest_ts) are compared.
- The quarantine keeps a record's first *processed* copy in Spark, its earliest *landed* copy in
  the oracle: the same row whenever objects are landed in ingest-time order, as the scenarios do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from bench import duckdb_pipeline
from bench.common import _normalise
from ingestion.bronze import RawRecord, write_bronze
from mdp.core import catalog
from mdp.core.lake import bronze_table_uri, read_parquet
from mdp.core.storage import store_for
from mdp.core.tables import silver_dataset

FIGURES = (
    "bronze_objects",
    "bronze_in",
    "accepted",
    "quarantined",
    "duplicates",
    "new_keys",
    "changed",
    "silver_rows",
    "quarantine_rows",
    "quarantine_reasons",
)
POSITION = ["source", "topic", "partition", "offset"]


def land(
    settings,
    messages: list[bytes],
    offsets: list[int],
    ingest: list[datetime] | datetime,
    source: str = "kafka",
    partition: int = 0,
) -> list[str]:
    """Write records into Bronze as a landing does (one object per ingest hour, named by its offsets):
    an object already there is left if it holds the same records, and never rewritten with others."""
    times = ingest if isinstance(ingest, list) else [ingest + timedelta(milliseconds=i) for i in range(len(messages))]
    records = [RawRecord(m, None, partition, o, t) for m, o, t in zip(messages, offsets, times, strict=True)]
    return write_bronze(settings, store_for(settings), records, source=source, topic="customers", refuse_changes=True)


def bronze_objects(settings) -> list[str]:
    root = Path(bronze_table_uri(settings).removeprefix("file://"))
    return sorted(str(p) for p in root.rglob("*.parquet")) if root.exists() else []


def as_json(messages) -> list[bytes]:
    return [json.dumps(m).encode() if isinstance(m, dict) else m for m in messages]


@dataclass
class Expected:
    tables: dict[str, pa.Table]
    figures: dict


def expected(settings, before: list[str], run: list[str], work: Path) -> Expected:
    """The oracle: Silver and Gold from scratch over before + run, and the figures of a run reading `run`."""
    import shutil

    if work.exists():
        shutil.rmtree(work)
    con = duckdb_pipeline.connect(threads=1)
    try:
        figures = duckdb_pipeline.bronze_to_silver(con, run, work / "silver", settings.data_contract, before=before)
        duckdb_pipeline.silver_to_gold(con, work / "silver" / "customers", work / "gold", settings.data_contract)
    finally:
        con.close()

    def read(p):
        return read_parquet(settings, str(p))

    tables = {
        "state": read(work / "silver" / "customers"),
        "quarantine": read(work / "silver" / "quarantine"),
        "batch": read(work / "silver" / "batch"),
        "gold": read(work / "gold" / "customer_features"),
    }
    return Expected(tables, figures)


def published(settings, staged_run: str | None = None) -> dict[str, pa.Table]:
    """What Spark published: Silver state and quarantine, the batch of the current version, Gold."""
    silver = silver_dataset(settings)
    out = {t: catalog.read(settings, f"silver.{t}") for t in ("state", "quarantine")}
    out["batch"] = silver.read("batch")
    if catalog.current_version(settings, "gold.features") is not None:
        out["gold"] = catalog.read(settings, "gold.features")
    return out


def _rows(table: pa.Table) -> tuple[list[str], list[tuple]]:
    names = sorted(table.column_names)
    cols = [_normalise(table.column(n)).to_pylist() for n in names]
    return names, [tuple(_hashable(v) for v in row) for row in zip(*cols, strict=False)] if cols else []


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def differences(want: pa.Table, got: pa.Table, key: list[str] | None, limit: int = 5) -> list[str]:
    """Row-level differences (empty when equal): columns, rows missing, rows extra, per key."""
    wn, wr = _rows(want)
    gn, gr = _rows(got)
    if wn != gn:
        return [f"columns differ: oracle {wn} vs spark {gn}"]
    out = []
    if key:
        idx = [wn.index(k) for k in key]
        w = {tuple(r[i] for i in idx): r for r in wr}
        g = {tuple(r[i] for i in idx): r for r in gr}
        if len(w) != len(wr) or len(g) != len(gr):
            out.append(
                f"key {key} not unique: oracle {len(wr)} rows / {len(w)} keys, spark {len(gr)} rows / {len(g)} keys"
            )
        for k in sorted(set(w) | set(g), key=repr):
            if w.get(k) != g.get(k):
                a, b = w.get(k), g.get(k)
                cols = (
                    [n for n, x, y in zip(wn, a or [None] * len(wn), b or [None] * len(wn), strict=False) if x != y]
                    if a and b
                    else "row"
                )
                out.append(
                    f"{dict(zip(key, k, strict=False))}: oracle {_show(wn, a)} spark {_show(wn, b)} (differs in {cols})"
                )
    else:
        from collections import Counter

        w, g = Counter(wr), Counter(gr)
        out += [f"only in oracle x{n}: {_show(wn, r)}" for r, n in (w - g).items()]
        out += [f"only in spark x{n}: {_show(wn, r)}" for r, n in (g - w).items()]
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def _show(names, row) -> str:
    return (
        "absent"
        if row is None
        else "{" + ", ".join(f"{n}={v!r}" for n, v in zip(names, row, strict=False) if not n.startswith("value")) + "}"
    )


@dataclass
class Comparison:
    tables: dict[str, list[str]] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.figures and not any(self.tables.values())

    def __str__(self) -> str:
        lines = [f"figures: {d}" for d in self.figures]
        lines += [f"{t}: {d}" for t, ds in self.tables.items() for d in ds]
        return "\n".join(lines) or "equal"


def compare(
    exp: Expected, actual: dict[str, pa.Table], figures: dict | None, contract, gold: bool = True
) -> Comparison:
    """Spark's published tables (and a run's figures) against the oracle's."""
    keys = {"state": [contract.primary_key], "quarantine": POSITION, "batch": None, "gold": [contract.primary_key]}
    out = Comparison()
    for table, key in keys.items():
        if (table == "gold" and not gold) or table not in exp.tables:
            continue
        out.tables[table] = differences(exp.tables[table], actual[table], key)
    if figures is not None:
        out.figures = [
            f"{k}: oracle {exp.figures[k]!r} spark {figures.get(k)!r}"
            for k in FIGURES
            if exp.figures[k] != figures.get(k)
        ]
    return out
