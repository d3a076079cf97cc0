"""The generator numbers records from 0 in every hour: positions must still be unique across hours,
or a quarantined record of one hour is taken for a copy of another's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mdp.core import catalog
from mdp.core.context import RunContext
from mdp.core.lake import Interval
from mdp.core.settings import get_settings
from mdp.core.stages import get_stage
from mdp.shell.runner import run_pipeline

pytestmark = pytest.mark.integration
H1 = datetime(2026, 4, 1, 10, tzinfo=UTC)
STAGES = [get_stage("land_bronze"), get_stage("bronze_to_silver"), get_stage("validate_silver")]


def _quarantine(settings, report) -> tuple[int, int]:
    version = report.figures("validate_silver")["validated_version"]
    return catalog.read(settings, "silver.quarantine", version).num_rows, report.figures("bronze_to_silver")[
        "duplicates"
    ]


def test_two_generated_hours_quarantine_what_each_hour_does_alone(tmp_path, spark):
    common = dict(events=2000, seed=11, dirty_fraction=0.05)
    alone = []
    for i, hour in enumerate((H1, H1 + timedelta(hours=1))):
        s = get_settings(home=tmp_path / f"alone{i}", **common)
        alone.append(_quarantine(s, run_pipeline(RunContext(s, Interval.hour_of(hour)), STAGES)))
    s = get_settings(home=tmp_path / "both", **common)
    both = _quarantine(s, run_pipeline(RunContext(s, Interval(H1, H1 + timedelta(hours=2))), STAGES))
    assert alone[0][0] > 0 and alone[1][0] > 0
    assert both == (alone[0][0] + alone[1][0], alone[0][1] + alone[1][1])


def test_other_generator_parameters_add_objects_and_nothing_is_overwritten(tmp_path, spark):
    s = get_settings(home=tmp_path, events=1000, seed=1)
    first = run_pipeline(RunContext(s, Interval.hour_of(H1)), STAGES).figures("bronze_to_silver")
    again = run_pipeline(RunContext(s, Interval.hour_of(H1)), STAGES).figures("bronze_to_silver")
    assert again["bronze_in"] == 0  # the same parameters rewrite the same objects: nothing new
    s2 = get_settings(home=tmp_path, events=1000, seed=2)
    other = run_pipeline(RunContext(s2, Interval.hour_of(H1)), STAGES).figures("bronze_to_silver")
    assert first["bronze_in"] == other["bronze_in"] == 1000
