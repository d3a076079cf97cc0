"""A small lake with two versions of every versioned table, written through mdp.core.tables as the
stages write (staged Parquet, one commit per table), without Spark."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from mdp.core.lake import arrow_filesystem, arrow_path
from mdp.core.tables import gold_dataset, scores_dataset, silver_dataset
from tests.helpers import clean_events, write_messages
from tests.training.gold import synthetic_gold

HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _stage(settings, write, table: str, data: pa.Table) -> None:
    fs = arrow_filesystem(settings)
    where = arrow_path(write.staging(table))
    fs.create_dir(where, recursive=True)
    with fs.open_output_stream(f"{where}/part-00000.parquet") as fh:
        pq.write_table(data, fh)


def build_lake(settings) -> dict:
    write_messages(settings, HOUR, [json.dumps(e).encode() for e in clean_events(1, HOUR, 20)])
    silver = silver_dataset(settings)
    quarantine_rows = []
    for n_state, n_quarantine in ((5, 2), (8, 3)):
        write = silver.begin("sql-test")
        _stage(settings, write, "state", pa.table({"customer_id": [f"C{i:07d}" for i in range(n_state)]}))
        _stage(settings, write, "quarantine", pa.table({"reason": ["unparseable_json"] * n_quarantine}))
        write.commit({})
        quarantine_rows.append(n_quarantine)
    gold_rows, gold = [40, 30], gold_dataset(settings)
    for n in gold_rows:
        write = gold.begin("sql-test")
        _stage(settings, write, "features", pa.Table.from_pandas(synthetic_gold(n), preserve_index=False))
        write.commit({"rows": n})
    scores = scores_dataset(settings)
    for n in (7, 9):
        write = scores.begin("sql-test")
        _stage(
            settings,
            write,
            scores.tables[-1],
            pa.table({"customer_id": [f"C{i:07d}" for i in range(n)], "score": [0.5] * n}),
        )
        write.commit({})
    name = f"gold.{settings.data_contract.scores_name}"
    return {
        "versions": {"bronze": "-", "silver.state": 1, "silver.quarantine": 1, "gold.features": 1, name: 1},
        "rows": {"bronze": 20, "silver.state": 8, "silver.quarantine": 3, "gold.features": 30, name: 9},
        "gold_rows": gold_rows,
        "quarantine_rows": quarantine_rows,
    }
