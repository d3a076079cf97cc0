"""Issue 20, item 9 and the second half of item 7, met through `mdp run` as a user would meet them.

- item 9: "future" is judged on one clock, the record's own ingest time plus
  `max_future_skew_hours`, in Spark and in the gate alike. Records landed by a host whose clock runs
  ahead pass Spark; the gate used to judge them against its own wall clock and stopped the run,
  run after run.
- item 7: a catch-up of many clean hours no longer dilutes one wholly broken hour under a share:
  the gate judges each share threshold per ingest hour too, and names the hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import clean_events
from tests.oracle.oracle import as_json, land
from tests.reliability.harness import cli_env, run_cli_in_process

pytestmark = pytest.mark.integration

STAGES = ["-s", "bronze_to_silver", "-s", "validate_silver"]
FIRST = datetime(2026, 3, 2, 0, tzinfo=UTC)


def test_records_ingested_ahead_of_the_wall_clock_pass_the_gate_as_they_pass_spark(tmp_path, make_settings):
    """A landing host ten days ahead: each event is within its ingest time + 24 h, so Spark accepts
    it, and the gate, on the same clock, accepts it too (it used to stop the run: exit 3)."""
    ahead = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=10)
    events = clean_events(3, ahead, 40)
    land(make_settings(), as_json(events), list(range(len(events))), ahead)
    r = run_cli_in_process(["run", *STAGES], cli_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.text[-3000:]


def _land_hours(settings, hours: int, broken: datetime | None = None, per_hour: int = 30) -> None:
    for h in range(hours):
        hour = FIRST + timedelta(hours=h)
        events = clean_events(100 + h, hour, per_hour)
        if hour == broken:  # a producer that broke for one hour: every email unreadable
            events = [{**e, "email": "not-an-email"} for e in events]
        land(settings, as_json(events), [h * 1000 + i for i in range(per_hour)], hour)


def test_a_catch_up_does_not_dilute_one_broken_hour(tmp_path, make_settings):
    """Thirteen hours in one run (a paused DAG catching up), one of them wholly broken: 30 of 390
    rows, 7.7% of the batch, under every share; on its own the hour is 100% broken and stops the run,
    naming the threshold and the hour."""
    broken = FIRST + timedelta(hours=12)
    _land_hours(make_settings(), 13, broken)
    r = run_cli_in_process(["run", *STAGES], cli_env(tmp_path), timeout=600)
    assert r.returncode == 3, r.text[-3000:]
    assert "quality.max_per_rule" in r.text and "ingest hour 2026-03-02T12" in r.text, r.text[-3000:]
    assert "ingest hour 2026-03-02T11" not in r.text, r.text[-3000:]


def test_the_same_clean_hours_alone_pass(tmp_path, make_settings):
    _land_hours(make_settings(), 12)
    r = run_cli_in_process(["run", *STAGES], cli_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.text[-3000:]


def test_a_recent_file_ingested_with_an_old_since_is_not_future(tmp_path):
    """Item 9: `mdp run --input FILE --since <old hour>` used to stamp the file with that hour, so its
    recent events were quarantined as future. A file's ingest time is when it is ingested."""
    import csv

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    events = clean_events(9, now - timedelta(hours=1), 20)
    path = tmp_path / "recent.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(events[0]))
        w.writeheader()
        w.writerows(
            [
                {k: "" if v is None else str(v).lower() if isinstance(v, bool) else v for k, v in e.items()}
                for e in events
            ]
        )
    old = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H")
    r = run_cli_in_process(
        ["run", "--input", str(path), "--since", old, "-s", "land_bronze", *STAGES], cli_env(tmp_path), timeout=600
    )
    assert r.returncode == 0, r.text[-3000:]
    assert "quarantined=0" in r.text, r.text[-3000:]
