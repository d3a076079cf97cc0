"""The CLI as users and pods call it: `mdp run` and `mdp stage` in subprocesses, every exit code.

    0 ok, 1 a stage failed unexpectedly (retryable), 2 bad usage or configuration, 3 the gate
    stopped the run, 4 row conservation failed, 5 a dependency is unavailable (retryable),
    6 a stage refused its input or the lake's state

Airflow and the pod operator act on these codes (3 and 4 are never retried, 5 is), so a gate
failure exiting 1 would be retried in kind mode: the codes are asserted here, not just the errors.
Two small embedded lakes (200 events an hour) run concurrently:
- `good`: `mdp run` exits 0; a Silver part file then goes missing (a lost batch) and the next
  `mdp run` (of another hour) exits 4, publishing nothing;
- `dirty`: half the events break the contract; `mdp stage validate_silver` exits 3 on the staged
  version (what the pod operator relies on), and `mdp run` exits 3.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.harness import cli_env, free_port, run_cli

pytestmark = pytest.mark.integration
EVENTS = "200"


def _settings(home: Path):
    from mdp.core.settings import get_settings

    return get_settings(home=home)


def _good(home: Path) -> dict:
    env = cli_env(home, MDP_EVENTS=EVENTS)
    out = {"first": run_cli(["run"], env, timeout=600)}
    from mdp.core.tables import silver_dataset

    silver = silver_dataset(_settings(home))
    out["published_before"] = (silver.current() or {}).get("version")
    parts = (
        sorted(Path(u.removeprefix("file://")) for u in silver.files("state"))
        if out["published_before"] is not None
        else []
    )
    out["lost_part"] = parts[0].name if parts else None
    if parts:
        parts[0].unlink()  # a lost batch: rows Silver's pointer says it holds are gone
    # Another hour, so that there is something new to merge (the generator names objects by offset:
    # the same hour again would be the same objects).
    out["second"] = run_cli(["run", "--since", "2026-01-05T10"], env, timeout=600)
    out["published_after"] = (silver.current() or {}).get("version")
    (home / "second.log").write_text(out["second"].stdout + out["second"].stderr)  # for a reader of a failure
    return out


def _dirty(home: Path) -> dict:
    env = cli_env(home, MDP_EVENTS=EVENTS, MDP_DIRTY_FRACTION="0.5")
    out = {"land": run_cli(["stage", "land_bronze"], env)}
    out["stage"] = run_cli(["stage", "bronze_to_silver", "--run-id", "pod-1"], env, timeout=400)
    out["validate"] = run_cli(["stage", "validate_silver", "--run-id", "pod-1"], env, timeout=400)
    out["run"] = run_cli(["run"], env, timeout=600)
    from mdp.core.tables import silver_dataset

    out["published"] = silver_dataset(_settings(home)).current()
    return out


# Which lake each test reads: the fixture builds only those the selected tests need.
LAKE_OF = {
    "test_mdp_run_exits_0_and_reports_conservation": "good",
    "test_a_lost_silver_batch_exits_4_and_publishes_nothing": "good",
    "test_mdp_stage_validate_silver_exits_3_on_a_failed_gate": "dirty",
    "test_mdp_run_exits_3_when_the_gate_stops_it": "dirty",
}


@pytest.fixture(scope="module")
def lakes(request, tmp_path_factory):
    wanted = sorted(
        {
            LAKE_OF[i.originalname]
            for i in request.session.items
            if i.module is request.module and i.originalname in LAKE_OF
        }
    )
    build = {"good": _good, "dirty": _dirty}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two lakes run concurrently
        futures = {n: pool.submit(build[n], tmp_path_factory.mktemp(f"cli-{n}")) for n in wanted}
        return {n: f.result() for n, f in futures.items()}


def test_mdp_run_exits_0_and_reports_conservation(lakes):
    r = lakes["good"]["first"]
    assert r.returncode == 0, r.text[-3000:]
    assert "row conservation OK" in r.text and "Rows per layer" in r.text
    assert lakes["good"]["published_before"] is not None


def test_a_lost_silver_batch_exits_4_and_publishes_nothing(lakes):
    g = lakes["good"]
    assert g["lost_part"], "Silver state had no part file to lose"
    r = g["second"]
    assert r.returncode == 4, r.text[-3000:]
    assert "ConservationError: row conservation failed, nothing staged" in r.text and "silver rows" in r.text, r.text[
        -1500:
    ]
    assert g["published_after"] == g["published_before"]  # nothing staged, nothing published


def test_mdp_stage_validate_silver_exits_3_on_a_failed_gate(lakes):
    d = lakes["dirty"]
    assert d["land"].returncode == 0, d["land"].text[-2000:]
    assert d["stage"].returncode == 0, d["stage"].text[-2000:]  # staging is not the gate's job
    r = d["validate"]
    assert r.returncode == 3, r.text[-3000:]
    assert "quality gate failed" in r.text and "max_quarantined" in r.text, r.text[-1500:]


def test_mdp_run_exits_3_when_the_gate_stops_it(lakes):
    d = lakes["dirty"]
    r = d["run"]
    assert r.returncode == 3, r.text[-3000:]
    assert "quality gate failed" in r.text
    assert d["published"] is None  # no Silver version ever passed the gate


def test_mdp_run_exits_6_when_a_stage_refuses(tmp_path):
    # bronze_to_silver on a lake with no Bronze and no Silver: the stage refuses (not a bad setting);
    # a retry cannot change that, so the pods must not retry it (issue 27: it exited 1, retried).
    r = run_cli(["run", "--stage", "bronze_to_silver"], cli_env(tmp_path))
    assert r.returncode == 6, r.text[-2000:]
    assert "no Bronze data" in r.text and "land events first" in r.text


def test_mdp_run_exits_1_on_an_unexpected_error(tmp_path):
    # A Delta log entry that is not JSON (a hand edit): nothing the stage foresaw, so exit 1, which is retried.
    entry = tmp_path / ".mdp" / "lake" / "silver" / "customers" / "state" / "_delta_log" / f"{0:020d}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text("{not json")
    r = run_cli(["run", "--stage", "bronze_to_silver"], cli_env(tmp_path))
    assert r.returncode == 1, r.text[-2000:]
    assert "stage failed" in r.text, r.text[-2000:]


def test_mdp_run_exits_2_on_bad_usage(tmp_path):
    r = run_cli(["run", "--stage", "no_such_stage"], cli_env(tmp_path))
    assert r.returncode == 2, r.text[-2000:]
    assert "no_such_stage" in r.text


def test_mdp_run_exits_5_when_a_dependency_is_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    r = run_cli(["run"], cli_env(tmp_path, MDP_MLFLOW_TRACKING_URI=url))
    assert r.returncode == 5, r.text[-2000:]
    assert f"mlflow_tracking_uri (MDP_MLFLOW_TRACKING_URI) {url}: connection refused" in r.text
