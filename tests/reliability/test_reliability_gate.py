"""Issue 7.4 - the quality gate holds.

The reference lake (three hours published, a model registered as `champion`). Then:
- one corrupted Bronze hour per kind of expectation (null key, duplicate ids, out of range, bad
  enum, bad regex), every event of the hour damaged: the batch suite (tolerant up to
  max_bad_fraction) must stop the run at validate_silver;
- a corrupted Silver version staged directly, as a buggy writer would (null key, duplicate key,
  one out-of-range row): the strict Silver suite must refuse to publish it.
Each time: nothing after the gate runs; Silver, Gold, the registry and `champion` are unchanged;
the staged version is discarded; the message names the failing expectation and the Data Docs.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mdp.core.context import GateFailed, RunContext
from mdp.core.lake import Interval, gold_dataset, new_version, read_parquet, silver_dataset
from mdp.shell.runner import run_pipeline
from mdp.core.stages import STAGES, get_stage
from tests.helpers import clean_events, write_messages
from tests.reliability.harness import HOURS

pytestmark = pytest.mark.integration

AFTER_SILVER = [s for s in STAGES if s.name not in ("land_bronze", "bronze_to_silver")]


def registry_state(settings) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    name = settings.model_name
    return {
        "versions": sorted(v.version for v in client.search_model_versions(f"name='{name}'")),
        "champion": client.get_model_version_by_alias(name, "champion").version,
        "runs": len(client.search_runs([e.experiment_id for e in client.search_experiments()])),
    }


def lake_state(settings) -> dict:
    silver, gold = silver_dataset(settings), gold_dataset(settings)
    return {"silver": silver.current()["version"], "staged": silver.staged(), "gold": gold.current()["version"],
            "registry": registry_state(settings)}


@pytest.fixture(scope="module")
def baseline(trained):
    assert trained.figures["promoted"], trained.figures
    return trained.settings


def _email(e):
    return e.replace("@", " at ")


# (name, field -> function applied to every event of the hour, expectation named in the failure)
BRONZE_CORRUPTIONS = [
    ("null_key", {"customer_id": lambda v: None}, "expect_column_values_to_not_be_null(customer_id)"),
    ("duplicate_ids", {"event_id": None}, "expect_column_values_to_be_unique(event_id)"),
    ("out_of_range", {"age": lambda v: 150}, "expect_column_values_to_be_between(age)"),
    ("bad_enum", {"plan": lambda v: "platinum"}, "expect_column_values_to_be_in_set(plan)"),
    ("bad_regex", {"email": _email}, "expect_column_values_to_match_regex(email)"),
]


@pytest.mark.parametrize("name,changes,expectation", BRONZE_CORRUPTIONS, ids=[c[0] for c in BRONZE_CORRUPTIONS])
def test_a_corrupted_batch_stops_at_the_gate(baseline, name, changes, expectation):
    settings = baseline
    hour = HOURS[-1] + timedelta(hours=1 + [c[0] for c in BRONZE_CORRUPTIONS].index(name))
    events = clean_events(101, hour, 200)
    if name == "duplicate_ids":  # 200 events sharing 10 event ids
        events = [{**e, "event_id": events[i % 10]["event_id"]} for i, e in enumerate(events)]
        changes = {}
    for field, fn in changes.items():
        events = [{**e, field: fn(e[field])} for e in events]
    write_messages(settings, hour, [json.dumps(e).encode() for e in events], source=f"corrupt-{name}")
    before = lake_state(settings)
    ctx = RunContext(settings, Interval.hour_of(hour))
    with pytest.raises(GateFailed) as err:
        run_pipeline(ctx, [get_stage("bronze_to_silver"), *AFTER_SILVER])
    assert [r.stage for r in ctx.report.results] == ["bronze_to_silver"]  # nothing after the gate ran
    message = str(err.value)
    assert f"batch: {expectation}" in message, message
    assert "Data Docs:" in message and "unchanged" in message
    assert lake_state(settings) == before


def stage_corrupted_silver(settings, corrupt) -> str:
    """Write a new Silver version from the current one with `corrupt(table)` applied, and stage it."""
    silver = silver_dataset(settings)
    cur = silver.current()
    version = new_version()
    customers = corrupt(read_parquet(settings, silver.table_uri("customers", cur["version"])))
    target = Path(silver.table_uri("customers", version).removeprefix("file://"))
    target.mkdir(parents=True)
    pq.write_table(customers, target / "part-00000.parquet")
    for table in ("quarantine", "batch"):  # the rest as the current version has it
        src = Path(silver.table_uri(table, cur["version"]).removeprefix("file://"))
        shutil.copytree(src, Path(silver.table_uri(table, version).removeprefix("file://")))
    silver.stage(version, {"interval": "test", "based_on": cur["version"], "note": "written by a buggy writer"})
    return version


def _null_keys(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("customer_id")
    ids = t.column(i).to_pylist()
    return t.set_column(i, t.schema.field(i), pa.array([None] * 3 + ids[3:], pa.string()))


def _duplicate_keys(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t, t.slice(0, 3)])


def _one_row_out_of_range(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("age")
    ages = t.column(i).to_pylist()
    return t.set_column(i, t.schema.field(i), pa.array([500] + ages[1:], t.schema.field(i).type))


SILVER_CORRUPTIONS = [
    ("null_key", _null_keys, "expect_column_values_to_not_be_null(customer_id)"),
    ("duplicate_key", _duplicate_keys, "expect_column_values_to_be_unique(customer_id)"),
    ("one_row_out_of_range", _one_row_out_of_range, "expect_column_values_to_be_between(age)"),
]


@pytest.mark.parametrize("name,corrupt,expectation", SILVER_CORRUPTIONS, ids=[c[0] for c in SILVER_CORRUPTIONS])
def test_a_corrupted_silver_version_is_never_published(baseline, name, corrupt, expectation):
    settings = baseline
    before = lake_state(settings)
    version = stage_corrupted_silver(settings, corrupt)
    assert silver_dataset(settings).staged()["version"] == version
    ctx = RunContext(settings, Interval.hour_of(HOURS[-1]))
    with pytest.raises(GateFailed) as err:
        run_pipeline(ctx, AFTER_SILVER)
    assert [r.stage for r in ctx.report.results] == []
    message = str(err.value)
    assert f"silver: {expectation}" in message and version in message, message
    assert lake_state(settings) == before  # the bad version was discarded, the pointer never moved
    assert pc.sum(pc.is_null(read_parquet(settings, silver_dataset(settings).table_uri("customers", before["silver"]))
                             .column("customer_id"))).as_py() in (None, 0)
