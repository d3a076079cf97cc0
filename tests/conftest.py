"""Shared fixtures, the kind of each test, and the grouping of tests over pytest-xdist workers.

tests/ mirrors the packages: tests/core, shell, ingestion, spark_apps, validation, training,
scoring and dags test the package of the same name; tests/deploy, containers and cluster the
deployment (charts, k8s, images, compose). Four folders are stories that cross every package and
so belong to none: pipeline (whole runs, in process and through the CLI), oracle (the reference
model against the real stages), properties (random histories) and reliability (crashes, reruns,
poison, secrets). tests/servers.py holds the real local servers (Postgres, Kafka, S3, MLflow)
that tests in several folders share.

One SparkSession for the whole test run (it costs 10-15 s to start).
"""

from __future__ import annotations

import json
import os
import sys
import time
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


pytest_plugins = ["tests.servers"]

# `make test` runs two pytest-xdist workers (`-n 2 --dist loadscope --no-loadscope-reorder`): the
# tests that wait on Docker go to one worker while the other runs the rest. The scheduler below
# keeps each group in one worker: one group per file, or per folder where a session fixture is
# costly (a reference lake, rendered charts, a migrated Airflow db). The Docker tests and
# `mdp airflow standalone` both publish host port 8088, so they share one group and never overlap.
# The files on the real servers (tests/servers.py) are one group, so one worker starts them once.
# (xdist's own `xdist_group` marks do not work with pytest 9, which no longer lets a plugin rename
# a node id.)
_BY_FOLDER = {"dags", "reliability", "deploy", "cluster", "training", "scoring", "properties"}
_SERVERS = {
    "tests/core/test_storage.py",
    "tests/core/test_tables_s3.py",
    "tests/ingestion/test_file_kafka.py",
    "tests/ingestion/test_kafka_follow.py",
    "tests/ingestion/test_kafka_landing.py",
    "tests/ingestion/test_kafka_topic_lifetimes.py",
    "tests/ingestion/test_postgres_source.py",
    "tests/pipeline/test_local_pipeline.py",
    "tests/shell/test_sql_s3.py",
}
# The longest groups first, so that no worker is left with a long one at the end.
_FIRST = (
    "docker",
    "reliability",
    "properties",
    "servers",
    "tests/oracle/test_oracle_sequences.py",
    "dags",
    "tests/pipeline/test_bench_tiny.py",
    "tests/pipeline/test_edges.py",
    "tests/pipeline/test_edges_deletes_and_retries.py",
    "tests/pipeline/test_delivery.py",
)
# The kind of test (markers in pyproject.toml), where a file does not mark itself: by folder, and
# `integration` for any test on the real servers. `-m unit` selects the fast tests.
_KINDS = ("unit", "integration", "deploy", "cluster", "containers")
_KIND_BY_FOLDER = {"core": "unit", "validation": "unit", "spark_apps": "unit"}
_KIND_BY_FOLDER.update(deploy="deploy", containers="containers", cluster="cluster")


def _folder(path: str) -> str:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else ""


def _group(path: str) -> str:
    """The group of a test file, from its path relative to the repo (`tests/<folder>/<file>.py`)."""
    folder = _folder(path)
    if folder == "containers" or path.endswith("/test_airflow_standalone.py"):
        return "docker"
    if path in _SERVERS:
        return "servers"
    return folder if folder in _BY_FOLDER else path


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid.split("::", 1)[0])

    return ByGroup(config, log)


def pytest_collection_modifyitems(config, items):
    unlisted = set()
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if "stack" in getattr(item, "fixturenames", ()) and path not in _SERVERS:
            unlisted.add(path)  # it would start a second set of servers on the other worker
        if not any(item.get_closest_marker(k) for k in _KINDS):
            on_servers = "stack" in getattr(item, "fixturenames", ())
            kind = "integration" if on_servers else _KIND_BY_FOLDER.get(_folder(path), "integration")
            item.add_marker(kind)
    if unlisted:
        raise pytest.UsageError(
            f"tests on the real servers, add them to _SERVERS in tests/conftest.py: {sorted(unlisted)}"
        )
    rank = {g: i for i, g in enumerate(_FIRST)}
    items.sort(key=lambda it: rank.get(_group(it.nodeid.split("::", 1)[0]), len(rank)))  # stable otherwise


_FOLDER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    folder = _folder(report.nodeid.split("::", 1)[0]) or "tests/"
    _FOLDER_SECONDS[folder] = _FOLDER_SECONDS.get(folder, 0.0) + report.duration


_STARTED = time.time()
_CONTAINER_TIMINGS = ROOT / ".cache" / "container-timings.json"  # written by tests/containers


def pytest_terminal_summary(terminalreporter):
    if _CONTAINER_TIMINGS.is_file() and _CONTAINER_TIMINGS.stat().st_mtime >= _STARTED:
        terminalreporter.write_sep("-", "container phases (seconds)")
        for k, v in json.loads(_CONTAINER_TIMINGS.read_text()).items():
            terminalreporter.write_line(f"{k:<40} {v:8.1f}")
    if _FOLDER_SECONDS:
        terminalreporter.write_sep("-", "seconds per folder (setup + call + teardown, summed over tests)")
        for folder, seconds in sorted(_FOLDER_SECONDS.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{folder:<16} {seconds:8.1f}")


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
    from tests.helpers import shared_spark

    return shared_spark()
