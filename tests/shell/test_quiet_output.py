"""`mdp run` as a newcomer sees it: the run's own progress and results, no library chatter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MDP = str(Path(sys.executable).with_name("mdp"))

# What the libraries print unless told not to (issue 14): JVM, log4j, Spark, GX, MLflow, warnings.
NOISE = re.compile(
    r"WARNING: Using incubator modules|log4j|Setting default log level|^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (WARN|INFO)|"
    r"NativeCodeLoader|Created temporary directory|Successfully registered model|already exists|Created version|"
    r"Warning:|^(INFO|WARNING) |\bINFO mlflow",
    re.MULTILINE,
)


def _run(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDP_", "MLFLOW_", "GX_"))}
    env.update(MDP_HOME=str(home), MDP_EVENTS="5000", MDP_SPARK_DRIVER_MEMORY="1g", COLUMNS="200")
    r = subprocess.run([MDP, *args], env=env, cwd=home, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    return out


def test_a_run_prints_only_its_own_lines(tmp_path):
    first = _run(tmp_path, "run")
    assert "row conservation OK" in first and "Rows per layer" in first
    assert not NOISE.findall(first), first
    # Another hour: a new Gold snapshot, and a second version of a model that exists (MLflow would
    # say so). The same Gold again would train nothing: a quiet hour registers no version.
    second = _run(tmp_path, "run", "--since", "2026-01-05T10")
    assert "model customers-churn v2" in second
    assert not NOISE.findall(second), second
    # --verbose brings the libraries back: what hides them is the project's configuration.
    # A backfill: Spark runs
    verbose = _run(tmp_path, "--verbose", "run", "--stage", "bronze_to_silver", "--since", "2026-01-05T10")
    assert "log4j" in verbose and "WARNING: Using incubator modules" in verbose, verbose
