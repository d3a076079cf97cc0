"""Serious 5 of issue 22: with credentials.*.existingSecret set, every Secret that anything
references (the chart's pods, the DAG's stage pods, the Airflow chart's values) is either
rendered by the chart in that namespace or one the user declared as existing."""

from __future__ import annotations

import importlib.util
import os

import capacity
import pytest
import yaml
from deploy_helpers import REPO, find, overlay_values, render_chart

_spec = importlib.util.spec_from_file_location("kind_secrets", REPO / "scripts" / "kind_secrets.py")
kind_secrets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kind_secrets)


def made_by_kind_secrets(overlay: str) -> set[tuple[str, str]]:
    return {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in kind_secrets.plan(overlay, lambda ns, n: None)}


AIRFLOW_VALUES = yaml.safe_load((REPO / "charts" / "upstream" / "airflow-values.yaml").read_text())
EXISTING = {
    "credentials": {
        "s3": {"existingSecret": "corp-s3"},
        "postgres": {"existingSecret": "corp-postgres"},
        "airflowMetadata": {"create": False, "name": "mdp-airflow-metadata"},
    }
}
# What the user creates (docs/DEPLOYMENT.md, "Helm alone"): the two Secrets in the release and the
# jobs namespace, and Airflow's DB URL in the airflow namespace.
DECLARED = {
    ("mdp", "corp-s3"),
    ("mdp-jobs", "corp-s3"),
    ("mdp", "corp-postgres"),
    ("mdp-jobs", "corp-postgres"),
    ("airflow", "mdp-airflow-metadata"),
}


def secret_refs(obj, out: set[str]) -> set[str]:
    if isinstance(obj, dict):
        if "secretKeyRef" in obj:
            out.add(obj["secretKeyRef"]["name"])
        if "secretRef" in obj:
            out.add(obj["secretRef"]["name"])
        if "secretName" in obj and isinstance(obj["secretName"], str):
            out.add(obj["secretName"])
        for v in obj.values():
            secret_refs(v, out)
    elif isinstance(obj, list):
        for v in obj:
            secret_refs(v, out)
    return out


def dag_pod_refs(airflow_env: dict[str, str]) -> set[str]:
    """Secret names in every stage pod the DAG builds, with the Airflow pods' env from the chart."""
    from mdp.core.stages import STAGES
    from mdp.shell import k8s

    old = {k: os.environ.get(k) for k in airflow_env}
    os.environ.update(airflow_env)
    try:
        settings = capacity.kind_settings()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    refs: set[str] = set()
    for stage in STAGES:
        body = (
            k8s.spark_application(settings, stage, "", "")
            if stage.kind == "spark"
            else k8s.stage_pod(settings, stage, "", "")
        )
        secret_refs(body, refs)
    assert settings.kubernetes.namespace == "mdp-jobs"
    return refs


@pytest.mark.parametrize("case", ["generated", "existingSecret", "ci-overlay"])
def test_every_secret_reference_resolves(case):
    values, declared = {
        "generated": ({}, set()),
        "existingSecret": (EXISTING, DECLARED),
        "ci-overlay": (overlay_values("ci"), made_by_kind_secrets("ci")),
    }[case]
    docs = render_chart(values)
    rendered = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Secret"}
    # The Airflow chart's own keys (fernet, JWT, API secret key): scripts/kind_secrets.py, any overlay.
    available = rendered | declared | made_by_kind_secrets("other")
    refs = set()
    for d in docs:
        ns = d["metadata"].get("namespace", "mdp")
        refs |= {(ns, n) for n in secret_refs(d.get("spec", {}), set())}
    env_cm = find(docs, "ConfigMap", "mdp-airflow-env", "airflow")
    refs |= {("mdp-jobs", n) for n in dag_pod_refs(env_cm["data"])}
    refs.add(("airflow", AIRFLOW_VALUES["data"]["metadataSecretName"]))
    refs |= {("airflow", AIRFLOW_VALUES[k]) for k in ("fernetKeySecretName", "jwtSecretName", "apiSecretKeySecretName")}
    assert refs - available == set(), f"referenced but neither rendered nor declared: {sorted(refs - available)}"
    if case == "existingSecret":
        assert {("mdp-jobs", "corp-s3"), ("mdp-jobs", "corp-postgres")} <= refs
        assert not {n for _, n in rendered} & {"mdp-s3", "mdp-postgres"}
    # The Airflow pods read that ConfigMap.
    assert "name: mdp-airflow-env" in AIRFLOW_VALUES["extraEnvFrom"]


def test_existing_postgres_secret_needs_an_airflow_metadata_secret():
    values = {"credentials": {"postgres": {"existingSecret": "corp-postgres"}}}
    with pytest.raises(Exception, match="airflowMetadata.create=false"):
        render_chart(values)
