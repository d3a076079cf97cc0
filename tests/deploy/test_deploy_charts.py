"""The platform chart: lint, render, values schema, built-in and custom resource validation,
and the container standards (non-root, resources, probes, pinned images)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import jsonschema
import k8s_schemas
import pytest
import yaml
from deploy_helpers import CHART, KUBE_VERSION, OVERLAYS, REPO, find, render_chart, secret_value, tool

pytestmark = pytest.mark.deploy

CHARTS = sorted(p.parent for p in (REPO / "charts").glob("*/Chart.yaml"))
EXPECTED_KINDS = {
    "Secret",
    "Service",
    "Deployment",
    "StatefulSet",
    "Job",
    "ConfigMap",
    "PersistentVolumeClaim",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Kafka",
    "KafkaNodePool",
    "KafkaTopic",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}


def test_charts_found():
    assert CHARTS, "no charts under charts/"
    assert CHART in CHARTS


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_chart_has_schema_notes_and_helpers(chart: Path):
    for rel in ("values.yaml", "values.schema.json", "templates/NOTES.txt", "templates/_helpers.tpl"):
        assert (chart / rel).is_file(), f"{chart.name}: missing {rel}"
    schema = json.loads((chart / "values.schema.json").read_text())
    assert schema.get("additionalProperties") is False, "top-level unknown keys must be rejected"


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_helm_lint(chart: Path):
    import helm_python as helm

    report = helm.lint(str(chart), strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [], report["errors"]
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_helm_lint_with_overlay_values(overlay):
    import helm_python as helm
    from deploy_helpers import overlay_values

    report = helm.lint(str(CHART), overlay_values(overlay), strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == [], report["errors"]


@pytest.mark.parametrize("which", ["default", *OVERLAYS])
def test_chart_renders_expected_kinds(chart_renders, which):
    docs = chart_renders[which]
    kinds = Counter(d["kind"] for d in docs)
    # The ci overlay turns persistence off: no claims there, and only there.
    # Its credentials are existing Secrets (scripts/kind_secrets.py), so it renders none.
    expected = EXPECTED_KINDS - {"PersistentVolumeClaim", "Secret"} if which == "ci" else EXPECTED_KINDS
    assert expected <= set(kinds), f"missing kinds: {expected - set(kinds)}"
    assert ("PersistentVolumeClaim" in kinds) == (which != "ci")
    assert ("Secret" in kinds) == (which != "ci")
    assert len(docs) >= (15 if which == "ci" else 20)
    for d in docs:
        assert d["metadata"].get("namespace"), f"{d['kind']}/{d['metadata']['name']} has no namespace"


BAD_VALUES = {
    "unknown-top-level-key": {"minoi": {"enabled": True}},
    "unknown-nested-key": {"kafka": {"replicas": 1, "replica": 2}},
    "latest-tag": {"images": {"postgres": "postgres:latest"}},
    "untagged-image": {"images": {"s3": "chrislusf/seaweedfs"}},
    "wrong-type": {"postgres": {"port": "5432"}},
    "nodeport-out-of-range": {"mlflow": {"service": {"type": "NodePort", "nodePort": 5001}}},
    "bad-service-type": {"s3": {"service": {"type": "Ingress"}}},
    "no-resources-limits": {"mlflow": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": None}}},
    "bad-bucket-name": {"s3": {"buckets": ["Bronze_Layer"]}},
    "negative-spark-executors": {"jobs": {"sparkExecutors": -1}},
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(name, tmp_path):
    import helm_python as helm

    values = BAD_VALUES[name]
    with pytest.raises(helm.HelmValuesError):
        render_chart(values)
    # The same, as a values file through `helm lint` (what a user would run).
    f = tmp_path / "bad-values.yaml"
    f.write_text(yaml.safe_dump(values))
    report = helm.lint(str(CHART), helm.values_from_yaml(f.read_text()))
    assert report["errors"], f"lint accepted {name}"


def test_schema_accepts_overlay_and_default_values():
    import helm_python as helm
    from deploy_helpers import overlay_values

    with helm.Chart.load(str(CHART)) as c:
        c.validate_schema({})
        for o in OVERLAYS:
            c.validate_schema(overlay_values(o))


# --- built-in kinds: kubernetes-validate --strict -----------------------------------------------


def _builtin(docs):
    return [d for d in docs if not k8s_schemas_group(d)]


def k8s_schemas_group(doc) -> bool:
    return doc["apiVersion"].split("/")[0] in {"kafka.strimzi.io", "sparkoperator.k8s.io"}


@pytest.mark.parametrize("which", ["default", *OVERLAYS])
def test_builtin_resources_pass_kubernetes_validate_strict(chart_renders, which):
    import kubernetes_validate

    docs = _builtin(chart_renders[which])
    assert len(docs) >= (15 if which == "ci" else 20)
    for d in docs:
        kubernetes_validate.validate(d, KUBE_VERSION, strict=True)
    assert {"Deployment", "StatefulSet", "Job", "Service", "Role"} <= {d["kind"] for d in docs}


def test_kubernetes_validate_strict_catches_a_typo(chart_renders):
    import kubernetes_validate

    dep = copy.deepcopy(find(chart_renders["default"], "Deployment", "mdp-mlflow"))
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_cli_on_overlay(overlay_docs, render_dir, overlay):
    """The literal command, on every built-in resource of the kustomize output."""
    docs = [d for d in overlay_docs[overlay] if not k8s_schemas_group(d)]
    assert len(docs) >= 20
    f = render_dir / f"builtin-{overlay}.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    proc = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, "--quiet", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- custom resources: jsonschema against the CRDs ----------------------------------------------


@pytest.fixture(scope="module")
def crds():
    if k8s_schemas.schemas_dir() is None:
        pytest.skip(k8s_schemas.missing_reason())
    return k8s_schemas.load_schemas()


@pytest.mark.parametrize("which", ["default", *OVERLAYS])
def test_custom_resources_match_crds(crds, chart_renders, overlay_docs, which):
    docs = chart_renders[which] + (overlay_docs[which] if which in overlay_docs else [])
    crs = [d for d in docs if k8s_schemas.is_custom_resource(d)]
    assert {d["kind"] for d in crs} == {"Kafka", "KafkaNodePool", "KafkaTopic"}
    for d in crs:
        k8s_schemas.validate_custom_resource(d)
    assert len(crs) >= 3


def test_crd_validation_is_strict(crds, chart_renders):
    kafka = find(chart_renders["default"], "Kafka", "mdp")
    typo = copy.deepcopy(kafka)
    typo["spec"]["kafka"]["listners"] = typo["spec"]["kafka"].pop("listeners")
    with pytest.raises(jsonschema.ValidationError):
        k8s_schemas.validate_custom_resource(typo)
    # Kafka `config` preserves unknown fields (any broker setting), so this stays valid.
    ok = copy.deepcopy(kafka)
    ok["spec"]["kafka"]["config"]["log.retention.hours"] = 24
    k8s_schemas.validate_custom_resource(ok)
    topic = copy.deepcopy(find(chart_renders["default"], "KafkaTopic", "customers"))
    topic["spec"]["partition"] = 3
    with pytest.raises(jsonschema.ValidationError):
        k8s_schemas.validate_custom_resource(topic)
    with pytest.raises(k8s_schemas.UnknownCustomResource):
        k8s_schemas.validate_custom_resource(
            {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "Kafka", "metadata": {"name": "old"}}
        )


def spark_application(profiles: dict, stage: str = "bronze_to_silver") -> dict:
    """A SparkApplication as the kind profile describes it (the DAG builds the real ones)."""
    k = profiles["kind"]["kubernetes"]
    env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": key}}}
        for ref in k["secrets"].values()
        for var, key in ref["keys"].items()
    ]
    pod = {
        "cores": 1,
        "memory": "1g",
        "env": env,
        "envFrom": [{"configMapRef": {"name": k["config_map"]}}],
        "labels": {"app.kubernetes.io/part-of": "mini-data-platform"},
    }
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": f"{stage.replace('_', '-')}-2026112500", "namespace": k["namespace"]},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": k["images"]["spark"],
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": "local:///opt/mdp/mdp/shell/spark_main.py",
            "arguments": [stage, "--since", "2026-11-25T00:00", "--until", "2026-11-25T01:00"],
            "sparkVersion": "4.3.0",
            "restartPolicy": {"type": "Never"},
            "driver": {**pod, "serviceAccount": k["spark_service_account"]},
            "executor": {**pod, "instances": 1},
        },
    }


def test_spark_application_shape_matches_crd(crds, profiles):
    app = spark_application(profiles)
    k8s_schemas.validate_custom_resource(app)
    assert ("sparkoperator.k8s.io/v1beta2", "SparkApplication") in crds
    bad = copy.deepcopy(app)
    bad["spec"]["driver"]["serviceAcount"] = "mdp-spark"
    with pytest.raises(jsonschema.ValidationError):
        k8s_schemas.validate_custom_resource(bad)


def test_strict_adds_additional_properties_only_where_not_preserved():
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "string"}}},
            "b": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"y": {}}},
            "c": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    s = k8s_schemas.strict(schema)
    assert s["additionalProperties"] is False
    assert s["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in s["properties"]["b"]
    assert s["properties"]["c"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema, "strict() must not modify its input"


def test_schemas_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(k8s_schemas.ENV, str(tmp_path / "nowhere"))
    assert k8s_schemas.schemas_dir() is None
    assert "make schemas" in k8s_schemas.missing_reason()


# --- container standards --------------------------------------------------------------------------


def pod_specs(docs):
    for d in docs:
        if d["kind"] in WORKLOADS:
            spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
            yield d, spec["template"]["spec"]


PINNED = re.compile(r"^[^@\s]+:(?!latest$)[\w][\w.-]{0,127}$")


@pytest.mark.parametrize("which", ["default", *OVERLAYS])
def test_every_container_is_hardened(chart_renders, which):
    checked = 0
    for d, spec in pod_specs(chart_renders[which]):
        pod_sc = spec.get("securityContext", {})
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{d['kind']}/{d['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}: not runAsNonRoot"
            assert (sc.get("runAsUser", pod_sc.get("runAsUser")) or 0) > 0, f"{where}: uid 0"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part, {})), f"{where}: resources.{part}"
            assert PINNED.match(c["image"]), f"{where}: image {c['image']} is not pinned"
            if d["kind"] in LONG_RUNNING:
                assert "readinessProbe" in c and "livenessProbe" in c, f"{where}: probes"
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("which", ["default", *OVERLAYS])
def test_kafka_pool_has_resources(chart_renders, which):
    pool = find(chart_renders[which], "KafkaNodePool", "mdp-dual-role")
    assert {"requests", "limits"} <= set(pool["spec"]["resources"])
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}, "KRaft: one pool with both roles"


# --- secrets ---------------------------------------------------------------------------------------

# Keys that hold a credential value; names of Secrets and file paths are not credentials.
CREDENTIAL_KEY = re.compile(r"(password|secret|accesskey|token)", re.I)


def _credential_values(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}"
            if isinstance(v, (dict, list)):
                yield from _credential_values(v, p)
            elif CREDENTIAL_KEY.search(k) and not k.lower().endswith(("name", "file", "ref", "existingsecret")):
                yield p, v
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _credential_values(v, f"{path}[{i}]")


def non_dev_values_files():
    files = list((REPO / "charts").rglob("*values*.yaml")) + list((REPO / "k8s").rglob("*values*.yaml"))
    return [p for p in files if "dev" not in p.name]


def test_no_plaintext_credentials_outside_dev_files():
    files = non_dev_values_files()
    assert CHART / "values.yaml" in files and len(files) >= 5
    found = 0
    for f in files:
        for path, value in _credential_values(yaml.safe_load(f.read_text()) or {}):
            found += 1
            assert value in ("", None), f"{f.relative_to(REPO)}{path} holds a literal credential"
    assert found >= 3, "the chart's credential keys were not seen; the check is vacuous"
    assert "mdp-dev-s3-password" not in (CHART / "values.yaml").read_text()


def test_default_credentials_are_generated_and_shared(chart_renders):
    docs = chart_renders["default"]
    again = render_chart()
    a = find(docs, "Secret", "mdp-s3", "mdp")
    b = find(again, "Secret", "mdp-s3", "mdp")
    assert len(secret_value(a, "AWS_SECRET_ACCESS_KEY")) >= 32
    assert secret_value(a, "AWS_SECRET_ACCESS_KEY") != secret_value(b, "AWS_SECRET_ACCESS_KEY"), "not random"
    # One value per render, copied to every namespace that reads it.
    jobs = find(docs, "Secret", "mdp-s3", "mdp-jobs")
    assert secret_value(jobs, "AWS_SECRET_ACCESS_KEY") == secret_value(a, "AWS_SECRET_ACCESS_KEY")
    pg = secret_value(find(docs, "Secret", "mdp-postgres", "mdp"), "POSTGRES_PASSWORD")
    conn = secret_value(find(docs, "Secret", "mdp-airflow-metadata", "airflow"), "connection")
    assert f":{pg}@postgres.mdp.svc.cluster.local:5432/airflow" in conn


def test_existing_secrets_are_used_not_created():
    # Airflow's DB URL needs the password, so the user brings that Secret too
    # (test_deploy_existing_secrets.py checks every reference end to end).
    docs = render_chart(
        {
            "credentials": {
                "s3": {"existingSecret": "my-s3"},
                "postgres": {"existingSecret": "my-pg", "user": "mdp"},
                "airflowMetadata": {"create": False},
            }
        }
    )
    assert not [d for d in docs if d["kind"] == "Secret"]
    # The Deployment shares its name with the generated Secret (as postgres does): compare the references.
    s3 = json.dumps(find(docs, "Deployment", "mdp-s3"))
    refs = re.findall(r'"(?:secretKeyRef|secretRef)": \{"name": "([^"]+)"', s3)
    assert refs and set(refs) == {"my-s3"}, refs
    assert '"name": "my-pg"' in json.dumps(find(docs, "StatefulSet", "mdp-postgres"))
