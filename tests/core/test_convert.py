"""A lake in the layout before Delta tables is refused with the command that converts it, and
`mdp lake convert` makes each published version a Delta table's version 0, checkpoint and all."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdp.core import catalog
from mdp.core.convert import convert
from mdp.core.errors import StageError
from mdp.core.tables import gold_dataset, silver_dataset


def old_lake(settings) -> Path:
    """What the old code left: v=<version>/ folders behind _CURRENT.json, and a checkpoint per version."""
    silver = Path(settings.layer_uri("silver").removeprefix("file://")) / "customers"
    gold = Path(settings.layer_uri("gold").removeprefix("file://")) / "customers"
    for table, n in (("state", 4), ("quarantine", 2), ("batch", 6), ("changes", 4)):
        (silver / table / "v=old1").mkdir(parents=True)
        pq.write_table(
            pa.table({"customer_id": [f"C{i}" for i in range(n)]}), silver / table / "v=old1" / "part-0.parquet"
        )
    (silver / "_checkpoint" / "v=old1" / "offsets").mkdir(parents=True)
    (silver / "_checkpoint" / "v=old1" / "offsets" / "0").write_text("v1\n{}\n")
    (silver / "_CURRENT.json").write_text(json.dumps({"version": "old1", "silver_rows": 4, "history": ["old1"]}))
    (gold / "features" / "v=g1").mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": ["C0", "C1", "C2"]}), gold / "features" / "v=g1" / "part-0.parquet")
    (gold / "_CURRENT.json").write_text(json.dumps({"version": "g1", "silver_version": "old1", "rows": 3}))
    return silver


def test_an_old_lake_is_refused_then_converted(make_settings):
    settings = make_settings()
    silver_root = old_lake(settings)
    with pytest.raises(StageError, match="mdp lake convert"):
        silver_dataset(settings).current()
    with pytest.raises(StageError, match="mdp lake convert"):
        gold_dataset(settings).current()
    with pytest.raises(StageError, match="mdp lake convert"):
        catalog.read(settings, "silver.state")  # mdp sql too

    done = convert(settings)
    assert len(done) == 2, done
    assert (
        catalog.read(settings, "silver.state").num_rows == 4
        and catalog.read(settings, "silver.quarantine").num_rows == 2
    )
    assert catalog.read(settings, "gold.features").num_rows == 3
    current = silver_dataset(settings).current()
    assert (current["version"], current["converted_from"], current["silver_rows"]) == (0, "old1", 4)
    assert (Path(current["checkpoint"].removeprefix("file://")) / "offsets" / "0").read_text() == "v1\n{}\n"
    assert gold_dataset(settings).current()["silver_version"] == 0  # the converted Silver's version
    assert not (silver_root / "_CURRENT.json").exists() and (silver_root / "_CURRENT.json.converted").exists()
    assert convert(settings) == []  # once
