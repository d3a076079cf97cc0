"""Shared fixtures. One SparkSession for the whole test run (it costs 10-15 s to start)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # dags/ and tests helpers importable without install tricks

# Never let a developer's shell settings leak into tests.
for _k in [k for k in os.environ if k.startswith("MDP_")]:
    os.environ.pop(_k)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MDP_SPARK_DRIVER_MEMORY", "2g")


@pytest.fixture
def make_settings(tmp_path, monkeypatch):
    """Settings for an isolated embedded lake under tmp_path (override any field by keyword)."""
    from mdp.core.settings import get_settings

    monkeypatch.delenv("MDP_PROFILE", raising=False)

    def _make(**overrides):
        overrides.setdefault("home", tmp_path)
        return get_settings(**overrides)

    return _make


@pytest.fixture(scope="session")
def spark():
    from mdp.core.settings import get_settings
    from spark_apps.session import get_spark

    session = get_spark(get_settings(home=Path("/tmp")))
    yield session
