"""Fixtures for tests/dags. The throwaway AIRFLOW_HOME is set by airflow_helpers at import.

To keep the wall time down in one process, the slow start-ups begin in the background as soon as
collection is done: `airflow db migrate` (for dag.test) and `mdp airflow standalone` (for the REST
and browser tests), each only when tests that need it were selected. Not under pytest-xdist.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import airflow_helpers as h
import pytest
from airflow_helpers import AIRFLOW_HOME, VENV_BIN, airflow_cli_env, load_dagbag  # noqa: F401 - sets the env first

# py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after
# pytest closed the captured streams ("--- Logging error ---"): keep it quiet.
logging.getLogger("py4j").setLevel(logging.WARNING)

_MIGRATE: dict[str, subprocess.Popen] = {}


def _selected(session, module: str) -> bool:
    return any(item.nodeid.split("::")[0].endswith(module) for item in session.items)


def pytest_collection_finish(session):
    # Under pytest-xdist every worker collects every test, and only one runs them: start nothing
    # early there (two standalones would race for port 8088); the fixtures start what they need.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if _selected(session, "test_airflow_dag_run.py"):
        _MIGRATE["proc"] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "db", "migrate"],
            env=airflow_cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    if _selected(session, "test_airflow_standalone.py") and not h.port_in_use():
        home = Path(tempfile.mkdtemp(prefix="mdp-standalone-test-"))
        h.EARLY["standalone"] = h.start_standalone(home)


def pytest_sessionfinish(session, exitstatus):
    sa = h.EARLY.pop("standalone", None)
    if sa is not None:
        sa.kill_leftovers()
        shutil.rmtree(sa.home, ignore_errors=True)
    proc = _MIGRATE.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.kill()
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db():
    """`airflow db migrate` once, in the temp AIRFLOW_HOME (started at collection); returns the home."""
    proc = _MIGRATE.get("proc") or subprocess.Popen(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        env=airflow_cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"airflow db migrate failed:\n{out[-5000:]}"
    return AIRFLOW_HOME


@pytest.fixture(scope="module")
def standalone():
    """The `mdp airflow standalone` started at collection, healthy, with the admin password read."""
    pytest.importorskip("psutil")
    pytest.importorskip("requests")
    sa = h.EARLY.get("standalone")
    if sa is None:
        if h.port_in_use():
            pytest.skip(
                f"port {h.PORT} is busy on 127.0.0.1 (another Airflow or service?): "
                "cannot start `mdp airflow standalone` there"
            )
        sa = h.EARLY["standalone"] = h.start_standalone(Path(tempfile.mkdtemp(prefix="mdp-standalone-test-")))
    problem = sa.wait_healthy()
    if problem:
        pytest.fail(problem)
    sa.password = h.json_load(sa.airflow_home / "simple_auth_manager_passwords.json.generated")["admin"]
    yield sa
    sa.kill_leftovers()  # also after the SIGINT test, which may fail with standalone still running
