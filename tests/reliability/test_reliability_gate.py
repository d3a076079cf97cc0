"""Issue 7.4 / 11 - the quality gate holds.

The reference lake (three hours published, a model registered as `champion`). Then:
- one corrupted Bronze hour per kind of expectation (null key, conflicting copies of event ids,
  out of range, bad enum, bad regex), every event of the hour damaged: the batch suite (tolerant up
  to the contract's quality thresholds) must stop the run at validate_silver;
- a corrupted Silver version staged directly, as a buggy writer would (null key, duplicate key,
  one out-of-range row): the strict changes suite and the whole-table facts must refuse it.
Each time: nothing after the gate runs; Silver, Gold, the registry and `champion` are unchanged;
the staged version is rejected; the message names the failing expectation, the contract threshold
and the Data Docs.
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

from mdp.core import catalog
from mdp.core.context import GateFailed, RunContext
from mdp.core.lake import Interval, bronze_partition, bronze_table_uri
from mdp.core.stages import STAGES, get_stage
from mdp.core.storage import join, store_for
from mdp.core.tables import silver_dataset
from mdp.shell.runner import run_pipeline
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
    return {
        "silver": catalog.current_version(settings, "silver.state"),
        "gold": catalog.current_version(settings, "gold.features"),
        "registry": registry_state(settings),
    }


@pytest.fixture(scope="module")
def baseline(trained):
    assert trained.figures["promoted"], trained.figures
    return trained.settings


def _email(e):
    return e.replace("@", " at ")


# (name, field -> function applied to every event of the hour, expectation named in the failure, threshold)
BRONZE_CORRUPTIONS = [
    (
        "null_key",
        {"customer_id": lambda v: None},
        "expect_column_values_to_not_be_null(customer_id)",
        "quality.max_per_rule",
    ),
    (
        "conflicting_ids",
        {"event_id": None},
        "expect_column_values_to_be_unique(event_id)",
        "quality.max_conflicting_duplicates",
    ),
    ("out_of_range", {"age": lambda v: 150}, "expect_column_values_to_be_between(age)", "quality.max_per_rule"),
    ("bad_enum", {"plan": lambda v: "platinum"}, "expect_column_values_to_be_in_set(plan)", "quality.max_per_rule"),
    ("bad_regex", {"email": _email}, "expect_column_values_to_match_regex(email)", "quality.max_per_rule"),
]


@pytest.mark.parametrize(
    "name,changes,expectation,threshold", BRONZE_CORRUPTIONS, ids=[c[0] for c in BRONZE_CORRUPTIONS]
)
def test_a_corrupted_batch_stops_at_the_gate(baseline, name, changes, expectation, threshold):
    settings = baseline
    hour = HOURS[-1] + timedelta(hours=1 + [c[0] for c in BRONZE_CORRUPTIONS].index(name))
    events = clean_events(101, hour, 200)
    if name == "conflicting_ids":  # 200 different events sharing 10 event ids
        events = [{**e, "event_id": events[i % 10]["event_id"]} for i, e in enumerate(events)]
        changes = {}
    for field, fn in changes.items():
        events = [{**e, field: fn(e[field])} for e in events]
    write_messages(settings, hour, [json.dumps(e).encode() for e in events], source=f"corrupt-{name}")
    before = lake_state(settings)
    ctx = RunContext(settings, Interval.hour_of(hour), run_id=f"corrupt-{name}")
    try:
        with pytest.raises(GateFailed) as err:
            run_pipeline(ctx, [get_stage("bronze_to_silver"), *AFTER_SILVER])
        assert [r.stage for r in ctx.report.results] == ["bronze_to_silver"]  # nothing after the gate ran
        message = str(err.value)
        assert f"customers_batch: {expectation}" in message and threshold in message, message
        assert "Data Docs:" in message and "unchanged" in message
        assert lake_state(settings) == before
        assert silver_dataset(settings).staged(ctx.run_id)["status"] == "rejected"
    finally:  # the next case must not see these objects (they stay unconsumed after a rejection)
        store_for(settings).delete_prefix(join(bronze_table_uri(settings), bronze_partition(hour)))


def stage_corrupted_silver(settings, corrupt, run_id: str) -> str:
    """Stage a new Silver version, as a buggy writer would: the current state with `corrupt` applied
    to it, the corrupted rows as its changes, and an honest manifest of what it wrote."""
    silver = silver_dataset(settings)
    cur = silver.current()
    write = silver.begin(run_id)
    before = silver.read("state", cur["version"])
    state = corrupt(before)
    changed = (
        state.slice(0, 3)
        if state.num_rows == before.num_rows
        else pa.concat_tables([state.slice(0, 3), state.slice(before.num_rows)])
    )
    for table, data in (("state", state), ("changes", changed)):
        target = Path(write.staging(table).removeprefix("file://"))
        target.mkdir(parents=True)
        pq.write_table(data, target / "part-00000.parquet")
    for table in ("quarantine", "batch"):  # the rest as the current version has it
        target = Path(write.staging(table).removeprefix("file://"))
        target.mkdir(parents=True)
        for i, uri in enumerate(silver.files(table, cur["version"])):
            shutil.copy(uri.removeprefix("file://"), target / f"part-{i:05d}.parquet")
    keys = len(set(state.column("customer_id").to_pylist()) - {None})
    profile = {**cur["profile"], "rows": state.num_rows, "keys": keys}
    silver.stage(
        run_id,
        write,
        {
            "note": "written by a buggy writer",
            "profile": profile,
            "silver_rows": state.num_rows,
            "checkpoint": cur["checkpoint"],
        },
    )
    return write.write_id


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
    ("null_key", _null_keys, "customers_changes: expect_column_values_to_not_be_null(customer_id)"),
    ("duplicate_key", _duplicate_keys, "customers_table: expect_column_pair_values_to_be_equal"),
    ("one_row_out_of_range", _one_row_out_of_range, "customers_changes: expect_column_values_to_be_between(age)"),
]


@pytest.mark.parametrize("name,corrupt,expectation", SILVER_CORRUPTIONS, ids=[c[0] for c in SILVER_CORRUPTIONS])
def test_a_corrupted_silver_version_is_never_published(baseline, name, corrupt, expectation):
    settings = baseline
    before = lake_state(settings)
    version = stage_corrupted_silver(settings, corrupt, run_id=f"buggy-{name}")
    assert silver_dataset(settings).staged(f"buggy-{name}")["write"]["write_id"] == version
    ctx = RunContext(settings, Interval.hour_of(HOURS[-1]), run_id=f"buggy-{name}")
    with pytest.raises(GateFailed) as err:
        run_pipeline(ctx, AFTER_SILVER)
    assert [r.stage for r in ctx.report.results] == []
    message = str(err.value)
    assert expectation in message and version in message, message
    assert lake_state(settings) == before  # the bad version was rejected, the pointer never moved
    assert pc.sum(
        pc.is_null(catalog.read(settings, "silver.state", before["silver"]).column("customer_id"))
    ).as_py() in (None, 0)
