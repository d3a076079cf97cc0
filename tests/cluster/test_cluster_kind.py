"""On a real kind cluster: the base applies, and the RBAC lets Airflow launch work in mdp-jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def kustomize(path: str, *flags: str) -> list[dict]:
    out = subprocess.run(
        [KUBECTL, "kustomize", *flags, str(REPO / path)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.k8s(provider="kind", cluster_name="mdp-pytest")
def test_base_and_rbac_apply(kind_cluster, tmp_path):
    k8s = kind_cluster
    k8s.create()
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump_all(kustomize("k8s/base")))
    k8s.apply(base)
    cm = k8s.kubectl(["get", "configmap", "mdp-config", "-n", "mdp-jobs"])
    assert cm["data"]["MDP_PROFILE"] == "kind"
    # Platform built-ins only: the CRs need the operators, which this test does not install.
    shim = tmp_path / "helm"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "scripts/helm_shim.py"}" "$@"\n')
    shim.chmod(0o755)
    docs = kustomize("k8s/overlays/ci", "--enable-helm", "--helm-command", str(shim))
    keep = [
        d for d in docs if d["kind"] in {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap"}
    ]
    assert len(keep) >= 10
    platform = tmp_path / "platform.yaml"
    platform.write_text(yaml.safe_dump_all(keep))
    k8s.apply(platform)
    can = subprocess.run(
        [
            KUBECTL,
            "--kubeconfig",
            str(k8s.kubeconfig),
            "auth",
            "can-i",
            "create",
            "sparkapplications.sparkoperator.k8s.io",
            "-n",
            "mdp-jobs",
            "--as",
            "system:serviceaccount:airflow:airflow-scheduler",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert can.stdout.strip() == "yes", can.stdout + can.stderr
    cannot = subprocess.run(
        [
            KUBECTL,
            "--kubeconfig",
            str(k8s.kubeconfig),
            "auth",
            "can-i",
            "create",
            "pods",
            "-n",
            "mdp",
            "--as",
            "system:serviceaccount:airflow:airflow-scheduler",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cannot.stdout.strip() == "no", "Airflow must not launch pods outside the jobs namespace"
