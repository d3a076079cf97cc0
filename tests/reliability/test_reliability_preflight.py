"""Preflight order: a bad S3 or MLflow setting stops the run before any stage starts.

The stages would fail on such a setting by themselves, with much the same message and exit code,
so the message alone cannot show that the preflight ran first. Each case runs the whole pipeline
(run_pipeline, as `mdp run` and the DAG's inline mode call it) in a fresh process that records
every stage it starts, and reports whether a SparkContext exists at the end: both must be empty.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.reliability.harness import ROOT, cli_env, free_port

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
from mdp.core.context import RunContext
from mdp.core.errors import MdpError
from mdp.core.lake import Interval, utcnow
from mdp.core.settings import get_settings
from mdp.core.stages import STAGES
from mdp.shell.runner import run_pipeline

started, code, message = [], 0, ""
settings = get_settings()
stages = [s for s in STAGES if s.enabled(settings)]
try:
    run_pipeline(RunContext(settings, Interval.hour_of(utcnow()), run_id="preflight"), stages,
                 on_start=lambda s: started.append(s.name))
except MdpError as exc:
    code, message = exc.exit_code, str(exc)
spark = False
if "pyspark" in sys.modules:
    from pyspark import SparkContext
    spark = SparkContext._active_spark_context is not None
print(json.dumps({"stages": [s.name for s in stages], "started": started, "code": code, "message": message, "spark": spark}))
"""

P = free_port()
URL = f"http://127.0.0.1:{P}"
# name: (environment, secrets in the environment, exit code, fragment of the message)
CASES = {
    "s3_unreachable": (
        {"MDP_PROFILE": "local", "MDP_S3_ENDPOINT": URL},
        True,
        5,
        f"s3_endpoint (MDP_S3_ENDPOINT) {URL}",
    ),
    "s3_without_credentials": ({"MDP_PROFILE": "local", "MDP_S3_ENDPOINT": URL}, False, 2, "S3 credentials missing"),
    "mlflow_unreachable": (
        {"MDP_MLFLOW_TRACKING_URI": URL},
        True,
        5,
        f"mlflow_tracking_uri (MDP_MLFLOW_TRACKING_URI) {URL}",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_s3_or_mlflow_setting_fails_before_any_stage_or_spark(tmp_path, name):
    env, with_secrets, code, fragment = CASES[name]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=cli_env(tmp_path, secrets_in_env=with_secrets, **env),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "train_model" in out["stages"] and len(out["stages"]) >= 4  # the whole pipeline was asked for
    assert out["code"] == code, out
    assert fragment in out["message"], out
    assert out["started"] == [], f"stages started before the bad setting was found: {out['started']}"
    assert out["spark"] is False, "a Spark session started before the bad setting was found"
