"""A quiet hour and `--all`, through `mdp run` as a user types it.

- A rerun with nothing new: every stage says "nothing new", and nothing is written: no Silver
  version, no Gold snapshot, no scores, no model version (an hourly DAG with nothing landed used to
  register an identical model every hour).
- `--all` reprocesses the Bronze hours there are; with the generator it makes up none in between
  (two hours twelve hours apart stayed two, not thirteen).
"""

from __future__ import annotations

import pytest

from tests.reliability.harness import cli_env, run_cli_in_process

pytestmark = pytest.mark.integration
EVENTS = "2000"


def _state(home) -> dict:
    from mlflow.tracking import MlflowClient

    from mdp.core.lake import all_bronze_hours
    from mdp.core.settings import get_settings
    from mdp.core.tables import gold_dataset, scores_dataset, silver_dataset

    s = get_settings(home=home)
    client = MlflowClient(s.mlflow_uri, s.mlflow_uri)
    return {
        "silver": (silver_dataset(s).current() or {}).get("version"),
        "gold": (gold_dataset(s).current() or {}).get("version"),
        "scores": (scores_dataset(s).current() or {}).get("version"),
        "versions": sorted(str(v.version) for v in client.search_model_versions(f"name = '{s.model_name}'")),
        "bronze_hours": [h.isoformat() for h in all_bronze_hours(s)],
    }


STAGES = [
    "-s",
    "bronze_to_silver",
    "-s",
    "validate_silver",
    "-s",
    "silver_to_gold",
    "-s",
    "train_model",
    "-s",
    "score_customers",
]


def test_a_rerun_with_nothing_new_does_nothing_and_says_so(tmp_path):
    env = cli_env(tmp_path, MDP_EVENTS=EVENTS, MDP_MIN_TEST_ROWS="50")  # 500 customers: a champion, then scores
    # The hour is named, so that the test does not depend on the clock (the hourly run lands "now").
    landed = run_cli_in_process(["generate", "--since", "2026-01-05T08"], env)
    again = run_cli_in_process(["generate", "--since", "2026-01-05T08"], env)
    assert landed.returncode == again.returncode == 0, landed.stdout + again.stdout + again.stderr
    assert (
        "landed 2000 events" in landed.stdout
        and "landed 0 events" in again.stdout
        and "2000 already there" in again.stdout
    )
    first = run_cli_in_process(["run", *STAGES], env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _state(tmp_path)
    assert None not in (before["silver"], before["gold"]) and before["versions"] == ["1"]  # Delta versions from 0
    quiet = run_cli_in_process(["run", *STAGES], env, timeout=600)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert _state(tmp_path) == before, "a run with nothing new wrote something"
    for stage in STAGES[1::2]:
        line = next(ln for ln in quiet.stdout.splitlines() if f" {stage} " in ln and "│" in ln)
        assert "nothing new" in line, quiet.stdout
    assert "not trained" in quiet.stdout and "already scored" in quiet.stdout


def test_all_reprocesses_bronze_and_makes_up_no_hours(tmp_path):
    env = cli_env(tmp_path, MDP_EVENTS=EVENTS)
    for hour in ("2026-01-05T00", "2026-01-05T12"):
        gen = run_cli_in_process(["generate", "--since", hour], env)
        assert gen.returncode == 0, gen.stdout + gen.stderr
    hours = _state(tmp_path)["bronze_hours"]
    assert len(hours) == 2
    out = run_cli_in_process(["run", "--all"], env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    state = _state(tmp_path)
    assert state["bronze_hours"] == hours, "the generator landed hours that were never there"
    from mdp.core.settings import get_settings
    from mdp.core.tables import silver_dataset

    assert silver_dataset(get_settings(home=tmp_path)).current()["bronze_in"] == 4000  # both hours read, nothing else
