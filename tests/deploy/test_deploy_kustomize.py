"""k8s/: every overlay builds with `kubectl kustomize --enable-helm` (Helm through scripts/helm_shim.py),
and carries the namespaces, config and secrets the DAG's kind profile reads."""

from __future__ import annotations

import importlib.util
import subprocess
from collections import Counter

import pytest
import yaml
from deploy_helpers import OVERLAYS, REPO, build_overlay, find, load_docs, overlay_values, secret_value, tool

_spec = importlib.util.spec_from_file_location("kind_secrets", REPO / "scripts" / "kind_secrets.py")
kind_secrets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kind_secrets)

pytestmark = pytest.mark.deploy

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass"}


def test_every_overlay_is_tested():
    on_disk = {p.parent.name for p in (REPO / "k8s" / "overlays").glob("*/kustomization.yaml")}
    assert on_disk == set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_is_complete(overlay_docs, overlay):
    docs = overlay_docs[overlay]
    kinds = Counter(d["kind"] for d in docs)
    # ci: no Secret rendered, its credentials are made once in the cluster (scripts/kind_secrets.py).
    assert kinds["Namespace"] == 3 and kinds["Deployment"] == 3  # s3, mlflow, model serving
    assert (kinds["Secret"] >= 5) if overlay == "dev" else kinds["Secret"] == 0
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "StatefulSet", "Job", "Role", "RoleBinding"} <= set(kinds)
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    assert names == {"mdp", "mdp-jobs", "airflow"}
    # `kubectl apply` would drop a namespace-less object into `default`.
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"].get("namespace") in names, f"{d['kind']}/{d['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_config_matches_kind_profile(overlay_docs, profiles, overlay):
    kind = profiles["kind"]
    cm = find(overlay_docs[overlay], "ConfigMap", kind["kubernetes"]["config_map"], kind["kubernetes"]["namespace"])
    expected = {
        "MDP_PROFILE": "kind",
        "MDP_LAKE_ROOT": kind["lake_root"],
        "MDP_S3_ENDPOINT": kind["s3_endpoint"],
        "MDP_KAFKA_BOOTSTRAP": kind["kafka_bootstrap"],
        "MDP_MLFLOW_TRACKING_URI": kind["mlflow_tracking_uri"],
        "MDP_POSTGRES_DSN": kind["postgres_dsn"],
        "MDP_SPARK_MASTER": kind["spark_master"],
    }
    assert {k: cm["data"][k] for k in expected} == expected
    assert all(k.startswith("MDP_") for k in cm["data"]), "only non-secret MDP_* settings here"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_secrets_match_kind_profile(overlay_docs, profiles, overlay):
    k = profiles["kind"]["kubernetes"]
    # dev renders its Secrets; ci gets them from scripts/kind_secrets.py (an empty cluster here).
    docs = overlay_docs[overlay] if overlay == "dev" else kind_secrets.plan(overlay, lambda ns, name: None)
    for ref in k["secrets"].values():
        for ns in (k["namespace"], "mdp"):
            secret = find(docs, "Secret", ref["name"], ns)
            for key in ref["keys"].values():
                assert secret_value(secret, key), f"{ns}/{ref['name']} lacks {key}"
    find(docs, "Secret", "mdp-airflow-metadata", "airflow")
    for sa in (k["service_account"], k["spark_service_account"]):
        find(overlay_docs[overlay], "ServiceAccount", sa, k["namespace"])


def test_dev_overlay_uses_the_dev_logins(overlay_docs, dotenv_example):
    s3 = find(overlay_docs["dev"], "Secret", "mdp-s3", "mdp-jobs")
    assert secret_value(s3, "AWS_ACCESS_KEY_ID") == dotenv_example["S3_ACCESS_KEY_ID"]
    assert secret_value(s3, "AWS_SECRET_ACCESS_KEY") == dotenv_example["S3_SECRET_ACCESS_KEY"]
    pg = find(overlay_docs["dev"], "Secret", "mdp-postgres", "mdp")
    assert secret_value(pg, "POSTGRES_PASSWORD") == dotenv_example["POSTGRES_PASSWORD"]


def test_ci_overlay_generates_credentials(dotenv_example):
    s3 = find(kind_secrets.plan("ci", lambda ns, name: None), "Secret", "mdp-s3", "mdp")
    assert secret_value(s3, "AWS_SECRET_ACCESS_KEY") not in dotenv_example.values()


def test_two_renders_give_the_same_secrets(helm_shim):
    """Minor 9: a second `make deploy OVERLAY=ci` (or a Tilt reload) must not rotate credentials."""
    first, second = (load_docs(build_overlay(o, helm_shim)) for o in ("ci", "ci"))

    def secrets(docs):
        return [d for d in docs if d["kind"] == "Secret"]

    assert secrets(first) == secrets(second) == []
    dev1, dev2 = (load_docs(build_overlay("dev", helm_shim)) for _ in range(2))
    assert secrets(dev1) == secrets(dev2) and secrets(dev1)  # fixed dev logins


def test_kind_secrets_keeps_what_the_cluster_has():
    """scripts/kind_secrets.py: generates only what exists nowhere, copies a half-present Secret,
    and derives Airflow's DB URL from the Postgres password it keeps."""
    cluster: dict = {}
    for m in kind_secrets.plan("ci", lambda ns, name: None):
        cluster[(m["metadata"]["namespace"], m["metadata"]["name"])] = m["stringData"]
    assert kind_secrets.plan("ci", lambda ns, name: cluster.get((ns, name))) == []  # second run: nothing new
    pg = cluster[("mdp", "mdp-postgres")]["POSTGRES_PASSWORD"]
    assert f":{pg}@" in cluster[("airflow", "mdp-airflow-metadata")]["connection"]
    del cluster[("mdp-jobs", "mdp-postgres")]
    (copy,) = kind_secrets.plan("ci", lambda ns, name: cluster.get((ns, name)))
    assert copy["metadata"]["namespace"] == "mdp-jobs" and copy["stringData"]["POSTGRES_PASSWORD"] == pg
    # Airflow's own keys are kept for every overlay; the chart is told their names.
    names = {m["metadata"]["name"] for m in kind_secrets.plan("dev", lambda ns, name: None)}
    airflow = yaml.safe_load((REPO / "charts/upstream/airflow-values.yaml").read_text())
    assert {airflow["fernetKeySecretName"], airflow["jwtSecretName"], airflow["apiSecretKeySecretName"]} == names
    ci_values = overlay_values("ci")["credentials"]
    assert (ci_values["s3"]["existingSecret"], ci_values["postgres"]["existingSecret"]) == ("mdp-s3", "mdp-postgres")
    mk = (REPO / "mk" / "deploy.mk").read_text()
    assert mk.index("scripts/kind_secrets.py") < mk.index("$(RENDER) |")
    assert "scripts/kind_secrets.py --overlay dev" in (REPO / "Tiltfile").read_text()


def test_overlay_patches_applied(overlay_docs):
    for overlay in OVERLAYS:
        job = find(overlay_docs[overlay], "Job", "mdp-s3-buckets", "mdp")
        assert "helm.sh/hook" not in job["metadata"].get("annotations", {}), overlay
    ci = overlay_docs["ci"]
    # Nothing reads MDP_EVENTS (the producer's count is `--events`): the ci overlay sets none.
    assert "MDP_EVENTS" not in find(ci, "ConfigMap", "mdp-config", "mdp-jobs")["data"]
    assert find(ci, "KafkaNodePool", "mdp-dual-role", "mdp")["spec"]["jvmOptions"]["-Xmx"] == "512m"
    assert find(ci, "KafkaNodePool", "mdp-dual-role", "mdp")["spec"]["storage"]["volumes"][0]["type"] == "ephemeral"
    assert "MDP_EVENTS" not in find(overlay_docs["dev"], "ConfigMap", "mdp-config", "mdp-jobs")["data"]


def test_base_builds_without_helm():
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", str(REPO / "k8s" / "base")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(proc.stdout) if d]
    assert sorted(kinds) == ["ConfigMap", "Namespace", "Namespace", "Namespace"]


def test_overlay_without_helm_flag_fails():
    """Guards the documented command: helmCharts need --enable-helm."""
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", str(REPO / "k8s" / "overlays" / "dev")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "enable-helm" in proc.stderr


def test_helm_shim_rejects_other_commands():
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "helm_shim.py"), "install", "x", "y"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unsupported" in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "helm_shim.py"), "version", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("v")
