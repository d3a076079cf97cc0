"""`mdp serve`: the champion behind MLflow's own model server, following the alias.

MLflow's server resolves `models:/<name>@champion` once, at start. So this supervisor resolves the
alias itself, runs `mlflow models serve -m models:/<name>/<version> --env-manager local` for that
version, checks the alias every --poll seconds, and when it names another version stops the server
and starts one for the new version (the endpoint is down for the few seconds that takes; a
readiness probe on /ping covers it). An MLflow that does not answer leaves the running version in
place. With no champion yet it waits for one. SIGTERM/SIGINT stop the server and the supervisor.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mdp.core.errors import Unavailable
from mdp.core.settings import Settings

log = logging.getLogger("mdp.serve")


def server_command(model_uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    return [
        mlflow,
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def _stop(proc: subprocess.Popen | None, grace_s: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the server's group (gunicorn/uvicorn and its workers)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def write_status(path: Path | None, **doc: Any) -> None:
    """The supervisor's heartbeat (a liveness probe reads its age), replaced atomically."""
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**doc, "at": time.time()}))
    tmp.replace(path)


def follow(
    settings: Settings,
    host: str,
    port: int,
    poll_s: float,
    stop: threading.Event | None = None,
    status_file: Path | None = None,
) -> None:
    """Serve the champion until `stop` is set (or a signal arrives), switching when the alias moves."""
    from scoring.champion import no_champion_reason, resolve

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    # mlflow runs `uvicorn` from PATH: this environment's, even when it is not activated.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "MLFLOW_TRACKING_URI": settings.mlflow_uri,
        "MLFLOW_REGISTRY_URI": settings.mlflow_uri,
    }
    proc, serving = None, None
    try:
        while not stop.is_set():
            try:
                ref, answered = resolve(settings), True
            except Unavailable as exc:
                log.warning("serve: %s; %s", exc, f"still serving v{serving}" if serving else "retrying")
                ref, answered = None, False
            wanted = ref.version if ref else serving  # no answer (or no alias): keep what runs
            exited: int | None = proc.poll() if proc is not None else None  # the server's exit code, once it ended
            if wanted is None and answered:
                log.warning("serve: %s; checking again in %.0fs", no_champion_reason(settings.model_name), poll_s)
            elif wanted is not None and (wanted != serving or exited is not None):
                why = "is the champion" if wanted != serving else f"(its server exited with {exited})"
                log.warning(
                    "serve: %s v%s %s: starting the model server on %s:%s", settings.model_name, wanted, why, host, port
                )
                _stop(proc)
                proc = subprocess.Popen(
                    server_command(f"models:/{settings.model_name}/{wanted}", host, port),
                    env=env,
                    start_new_session=True,
                )
                serving = wanted
            write_status(
                status_file, state="serving" if serving else "waiting", model=settings.model_name, version=serving
            )
            stop.wait(poll_s)
    finally:
        _stop(proc)
