"""Shared by tests/dags: paths, the throwaway Airflow environment, DAG parsing helpers.

Importing this module sets AIRFLOW_HOME and the sqlite metadata DB in os.environ (Airflow reads
its configuration once, at import), so conftest.py imports it before anything imports airflow.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_ID = "customers_end_to_end"
VENV_BIN = Path(sys.executable).parent

if "airflow" in sys.modules:  # pragma: no cover - only when another conftest imported it first
    warnings.warn(
        "airflow was imported before tests/dags/conftest.py: its config may not be the temp one", stacklevel=1
    )

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mdp-airflow-test-"))
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
}
os.environ.update(AIRFLOW_ENV)


def airflow_cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **AIRFLOW_ENV, **extra}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def load_dagbag():
    """Parse the DAG folder from files (not the DB) with the current environment's profile."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


# ---- the documented `mdp airflow standalone`, for test_airflow_standalone.py ------------------------
PORT = 8088
BASE = f"http://127.0.0.1:{PORT}"
STANDALONE_EVENTS = "2000"
START_TIMEOUT_S = 300


def port_in_use(port: int = PORT) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Standalone:
    proc: subprocess.Popen
    home: Path
    log: Path
    password: str = ""
    token: str = ""
    run_id: str = ""
    stopped: bool = False
    children: list = field(default_factory=list)  # pids seen under standalone when it was stopped

    @property
    def airflow_home(self) -> Path:
        return self.home / ".mdp" / "airflow"

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def api(self, method: str, path: str, **kw):
        import requests

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, BASE + path, headers=headers, timeout=30, **kw)

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> str | None:
        """None when the scheduler reports healthy, else why not."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"`mdp airflow standalone` exited with {self.proc.returncode}:\n{self.tail()}"
            try:
                r = requests.get(f"{BASE}/api/v2/monitor/health", timeout=5)
                if r.ok and r.json().get("scheduler", {}).get("status") == "healthy":
                    return None
            except requests.RequestException:
                pass
            time.sleep(2)
        return f"Airflow did not answer on {BASE} within {timeout}s:\n{self.tail()}"

    def stop(self, timeout: float = 120) -> tuple[list, list]:
        """SIGINT (the clean way); returns (child processes before, those still alive after)."""
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.children = [p.pid for p in children]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        _, alive = psutil.wait_procs(children, timeout=30)
        self.stopped = True
        return children, alive

    def kill_leftovers(self) -> None:
        """Last resort: never leave anything running, even when a test failed (the session keeps
        port 8088 for the compose platform's Airflow)."""
        import psutil

        if not self.stopped:
            self.stop()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the whole session: standalone and its children
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        for pid in self.children:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


def start_standalone(home: Path) -> Standalone:
    """Start the documented command, as a developer would: no AIRFLOW_* from the test session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        MDP_HOME=str(home),
        MDP_EVENTS=STANDALONE_EVENTS,
        MDP_MIN_TEST_ROWS="50",  # about 110 test rows at this size: enough to name a champion
        # Only the run the test triggers: no scheduled run of the latest hour once unpaused.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
    )
    log = home / "standalone.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "mdp"), "airflow", "standalone"],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As in a terminal: a test session started in the background (`cmd &` in a script)
            # ignores SIGINT, and the child would inherit that and never see the Ctrl-C under test.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    return Standalone(proc=proc, home=home, log=log)


# Started early by conftest (while the other tests run), picked up by the `standalone` fixture.
EARLY: dict[str, object] = {}


def json_load(path: Path):
    import json

    return json.loads(Path(path).read_text())
