"""`make bench` at toy sizes: the bench's own code path, every equality check it makes (Spark
against DuckDB and pandas on the same Bronze, the incremental hour, conservation), its landing run
and its whole-process CLI runs. A test of correctness, not of time: speed is measured by `make bench`
on a quiet machine, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--work", str(out / "work"), "--results", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    doc = json.loads((out / "latest-tiny.json").read_text()) if (out / "latest-tiny.json").exists() else None
    return proc, doc


def test_bench_runs_and_every_equality_check_passes(tiny):
    proc, doc = tiny
    assert proc.returncode == 0 and doc is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert doc["equality_ok"] and not doc.get("errors")
    assert {s["events"] for s in doc["scenarios"]} == {1_000, 2_000}
    for s in doc["scenarios"]:
        assert s["duckdb"]["equality"]["equal"] and s["duckdb"]["figures_equal"], s["duckdb"]
        assert s["spark"]["conservation_ok"] and "bronze_in" in s["spark"]["conservation"]
        assert s["pandas"]["equality"]["equal"], s["pandas"]
        assert s["spark"]["figures"]["bronze_in"] == s["events"]
    inc = next(s["incremental"] for s in doc["scenarios"] if "incremental" in s)
    assert inc["equality_vs_duckdb"]["equal"] and inc["silver_version_changed"], inc


def test_bench_lands_through_kafka_and_times_the_cli(tiny):
    _, doc = tiny
    runs = doc["landing"].get("runs")
    assert runs and all(r["landed"] == 1_000 for r in runs), doc["landing"]
    cli = doc["cli"]
    assert cli["quiet_changed_nothing"], cli["state_before_after"]
    before, _ = cli["state_before_after"]
    # Delta versions from 0
    assert before["model_versions"] == 1 and None not in (
        before["silver"],
        before["gold"],
        before["scores"],
    )
