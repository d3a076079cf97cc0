"""Cluster tests need kind and a working Docker daemon; without them they skip (never error).

pytest-kubernetes' `k8s` fixture raises RuntimeError when no provider binary is found, so every
test here asks for `kind_cluster`, which skips first and only then builds the cluster.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def pytest_configure(config):
    # pytest-kubernetes' marker, registered here because the project runs with --strict-markers.
    config.addinivalue_line("markers", "k8s(provider, cluster_name, keep): pytest-kubernetes cluster options")


def kind_unavailable_reason() -> str | None:
    if shutil.which("kind") is None:
        return "kind is not installed (the GitHub workflow kind-e2e runs the cluster path)"
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        return "the Docker daemon is not reachable (docker info failed)"
    return None


@pytest.fixture(scope="session")
def kind_available():
    reason = kind_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def kind_cluster(kind_available, request):
    # Only now is the pytest-kubernetes fixture resolved, so its RuntimeError cannot happen.
    return request.getfixturevalue("k8s")
