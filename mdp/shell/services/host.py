"""What every local server shares: its folder (data, log, pid) under the root, its endpoint, and
starting, watching and stopping its process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mdp.core.lake import pid_alive  # one definition, shared with the writer's lease
from mdp.shell.services.config import PG_ROLE, Ports, ServiceConfig


class ServiceError(RuntimeError):
    """A local service could not be started, stopped or reached; the message says what to do."""


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, n: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    proc_alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until it is true; a ServiceError after `timeout`, or at once when the process died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        if proc_alive is not None and not proc_alive():
            text = tail(log) if log else ""
            raise ServiceError(f"{what} exited during start-up{': ' + text if text else ''}")
        time.sleep(0.2)
    raise ServiceError(
        f"{what} not healthy after {timeout:.0f}s{f' ({last})' if last else ''}{'; log: ' + str(log) if log else ''}"
    )


class ServiceHost:
    """The servers whose state lives under `root`: one folder per server, and the process bookkeeping.
    Each server's start, health check and bootstrap are a class of their own (postgres.py, kafka.py,
    s3.py, mlflow.py); LocalServices (local.py) combines them."""

    def __init__(self, root: Path, config: ServiceConfig | None = None) -> None:
        self.root = Path(root).resolve()
        cfg_file = self.root / "config.json"
        if config is None:
            config = ServiceConfig.load(cfg_file) if cfg_file.exists() else ServiceConfig()
        self.config = config
        self.ports: Ports = config.ports
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        config.save(cfg_file)

    def dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ---- endpoints, as the settings and the shell see them ----------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    def postgres_dsn(self, database: str = "customers") -> str:
        return f"postgresql://{PG_ROLE}@127.0.0.1:{self.ports.postgres}/{database}"

    # ---- process bookkeeping -----------------------------------------------------------------
    def _pid(self, name: str) -> int | None:
        f = self.root / name / ("data/postmaster.pid" if name == "postgres" else "pid")
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def port_of(self, name: str) -> int:
        port: int = getattr(self.ports, name)
        return port

    def running(self, name: str) -> bool:
        return pid_alive(self._pid(name))

    def _check_port_free(self, name: str, port: int) -> None:
        if port_open(port):
            raise ServiceError(
                f"{name}: port {port} on 127.0.0.1 is already taken by another process "
                f"(not by {self.root / name}); stop that process or change the port in {self.root / 'config.json'}"
            )

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        d = self.dir(name)
        log = open(d / "log", "ab")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=d,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()
        (d / "pid").write_text(str(proc.pid))
        self._procs[name] = proc
        return proc

    def _alive_fn(self, name: str) -> Callable[[], bool]:
        def alive() -> bool:
            proc = self._procs.get(name)
            return proc.poll() is None if proc is not None else self.running(name)

        return alive

    def _stop_process(self, name: str, timeout: float) -> None:
        """SIGTERM the server's process group, SIGKILL it after `timeout`, forget its pid."""
        pid = self._pid(name)
        proc = self._procs.pop(name, None)
        if pid is not None and pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                if proc is not None:
                    proc.poll()
                time.sleep(0.1)
            if pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        (self.root / name / "pid").unlink(missing_ok=True)
