"""The Spark stages under a master that is not `local`: executors are separate JVMs and Python
workers, as on compose's standalone cluster and under spark-operator. `local-cluster` gives that on
one machine. (A local directory shipped with addFile works in local mode and fails on a cluster.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MDP = str(Path(sys.executable).with_name("mdp"))


def test_the_whole_pipeline_scores_under_a_cluster_master(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDP_", "MLFLOW_"))}
    env.update(
        MDP_HOME=str(tmp_path),
        MDP_EVENTS="3000",
        MDP_MIN_TEST_ROWS="50",
        MDP_SPARK_DRIVER_MEMORY="1g",
        MDP_SPARK_MASTER="local-cluster[1,1,1024]",
        COLUMNS="200",
    )
    r = subprocess.run([MDP, "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "score_customers" in out and "new_scores=True" in out, out[-3000:]
    from mdp.core import catalog
    from mdp.core.settings import get_settings

    settings = get_settings(home=tmp_path)
    name = f"gold.{settings.data_contract.scores_name}"
    from mdp.core.tables import scores_dataset

    table = catalog.read(settings, name)
    assert table.num_rows == scores_dataset(settings).current()["rows"] > 0
    assert set(table.column("model_version").to_pylist()) == {"1"}
