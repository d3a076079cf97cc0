"""One set of names everywhere: mdp/core/profiles.yaml (the source of truth) against the chart, the
overlays, the upstream values, compose, kind, the Makefile and the Tiltfile."""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlparse

import pytest
import yaml
from deploy_helpers import OVERLAYS, REPO, find

pytestmark = pytest.mark.deploy

PLATFORM_PORTS = {8088, 8080, 9000, 9001, 5001, 5002}


def kind_images(profiles) -> dict[str, str]:
    return profiles["kind"]["kubernetes"]["images"]


def test_image_names_and_tags(profiles, compose_config):
    images = kind_images(profiles)
    assert set(images) == {"airflow", "spark", "jobs"}
    tag = {ref.split(":")[1] for ref in images.values()}
    assert len(tag) == 1
    s = compose_config["services"]
    assert s["airflow-webserver"]["image"] == images["airflow"]
    assert s["spark-master"]["image"] == s["spark-worker"]["image"] == images["spark"]
    assert s["mlflow"]["image"] == images["jobs"]
    mk = (REPO / "mk" / "deploy.mk").read_text()
    assert re.search(r"^IMAGE_TAG\s*\?=\s*(\S+)", mk, re.M).group(1) in tag
    assert re.search(r"^IMAGES\s*:=\s*(.+)$", mk, re.M).group(1).split() == ["airflow", "spark", "jobs"]
    assert f"TAG = '{tag.pop()}'" in (REPO / "Tiltfile").read_text()
    airflow = yaml.safe_load((REPO / "charts/upstream/airflow-values.yaml").read_text())
    assert f"{airflow['images']['airflow']['repository']}:{airflow['images']['airflow']['tag']}" == images["airflow"]
    chart = yaml.safe_load((REPO / "charts/mdp-platform/values.yaml").read_text())
    assert chart["images"]["mlflow"] == images["jobs"]


def test_buckets(compose_config, chart_renders):
    from mdp.core.settings import LAYERS

    chart = yaml.safe_load((REPO / "charts/mdp-platform/values.yaml").read_text())
    assert chart["s3"]["buckets"] == list(LAYERS) == ["bronze", "silver", "gold", "mlflow"]
    init = compose_config["services"]["s3-init"]
    assert init["entrypoint"] == ["python", "-m", "mdp.shell.s3_buckets"]
    assert init["command"] == ["--endpoint=http://s3:9000", *LAYERS]
    job = find(chart_renders["default"], "Job", "mdp-s3-buckets")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "mdp.shell.s3_buckets"]
    assert container["args"] == ["--endpoint=http://s3.mdp.svc.cluster.local:9000", *LAYERS]
    assert chart["mlflow"]["artifactsBucket"] == "mlflow"
    assert "--artifacts-destination=s3://mlflow" in compose_config["services"]["mlflow"]["command"]


def test_topic(compose_config, chart_renders):
    from mdp.core.settings import get_settings

    topic = get_settings().topic
    assert topic == "customers"
    assert find(chart_renders["default"], "KafkaTopic", topic)["spec"]["topicName"] == topic
    assert f"--topic {topic} " in compose_config["services"]["kafka-init"]["command"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kind_service_hosts_and_ports(profiles, overlay_docs, overlay):
    """Every endpoint of the kind profile resolves to a rendered Service with that port."""
    kind = profiles["kind"]
    docs = overlay_docs[overlay]
    services = {
        (d["metadata"]["name"], d["metadata"]["namespace"]): {p["port"] for p in d["spec"]["ports"]}
        for d in docs
        if d["kind"] == "Service"
    }
    endpoints = [
        kind["s3_endpoint"],
        kind["mlflow_tracking_uri"],
        kind["postgres_dsn"],
        "tcp://" + kind["kafka_bootstrap"],
    ]
    kafka = find(docs, "Kafka", "mdp", "mdp")
    for url in endpoints:
        u = urlparse(url)
        name, ns, *_ = u.hostname.split(".")
        if name == f"{kafka['metadata']['name']}-kafka-bootstrap":  # created by the Strimzi operator
            assert u.port in {ln["port"] for ln in kafka["spec"]["kafka"]["listeners"] if not ln["tls"]}
            continue
        assert (name, ns) in services, f"{url}: no Service {ns}/{name}"
        assert u.port in services[(name, ns)], f"{url}: Service {ns}/{name} lacks port {u.port}"
    db = urlparse(kind["postgres_dsn"])
    assert db.path.lstrip("/") == "customers" and db.username == "mdp"
    sts = find(docs, "StatefulSet", "mdp-postgres", "mdp")
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_DB"] == "customers" and env["POSTGRES_USER"] == "mdp"
    init = find(docs, "ConfigMap", "mdp-postgres-init", "mdp")["data"]["10-databases.sh"]
    assert '"airflow"' in init and '"mlflow"' in init


def test_compose_hosts_and_ports(profiles, compose_config):
    compose = profiles["compose"]
    s = compose_config["services"]
    for url in (
        compose["s3_endpoint"],
        compose["mlflow_tracking_uri"],
        compose["postgres_dsn"],
        "tcp://" + compose["kafka_bootstrap"],
        compose["spark_master"],
    ):
        u = urlparse(url)
        assert u.hostname in s, f"{url}: no compose service {u.hostname}"
    assert "--port=5001" in s["mlflow"]["command"]
    assert "PLAINTEXT://kafka:9092" in s["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "--port" in s["spark-master"]["command"] and "7077" in s["spark-master"]["command"]
    assert s["s3"]["command"][0] == "mini" and "-s3.port=9000" in s["s3"]["command"]
    assert s["postgres"]["environment"]["POSTGRES_DB"] == urlparse(compose["postgres_dsn"]).path.lstrip("/")
    assert "CREATE DATABASE airflow" in compose_config["configs"]["postgres-databases"]["content"]


def test_secret_names_and_keys(profiles, chart_renders):
    secrets = profiles["kind"]["kubernetes"]["secrets"]
    assert secrets["s3"]["name"] == "mdp-s3" and secrets["postgres"]["name"] == "mdp-postgres"
    jobs_ns = profiles["kind"]["kubernetes"]["namespace"]
    for ref in secrets.values():
        secret = find(chart_renders["default"], "Secret", ref["name"], jobs_ns)
        assert set(ref["keys"].values()) <= set(secret["data"])


def test_namespaces_and_service_accounts(profiles, chart_renders):
    k = profiles["kind"]["kubernetes"]
    chart = yaml.safe_load((REPO / "charts/mdp-platform/values.yaml").read_text())
    assert chart["namespaces"]["jobs"] == k["namespace"]
    assert chart["jobs"]["serviceAccount"] == k["service_account"]
    assert chart["jobs"]["sparkServiceAccount"] == k["spark_service_account"]
    spark_op = yaml.safe_load((REPO / "charts/upstream/spark-operator-values.yaml").read_text())
    assert spark_op["spark"]["jobNamespaces"] == [k["namespace"]]
    assert spark_op["spark"]["serviceAccount"]["name"] == k["spark_service_account"]
    # Airflow's service accounts (release `airflow`) may launch pods and SparkApplications.
    binding = find(chart_renders["default"], "RoleBinding", "mdp-airflow-launcher", k["namespace"])
    assert {s["name"] for s in binding["subjects"]} >= {"airflow-scheduler", "airflow-triggerer"}
    assert {s["namespace"] for s in binding["subjects"]} == {"airflow"}
    role = find(chart_renders["default"], "Role", "mdp-airflow-launcher", k["namespace"])
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("", "pods"), ("", "pods/log"), ("sparkoperator.k8s.io", "sparkapplications")} <= granted
    releases = yaml.safe_load((REPO / "charts/upstream/releases.yaml").read_text())["releases"]
    assert {r["name"]: r["namespace"] for r in releases}["airflow"] == "airflow"


def test_metadata_secret_wiring():
    chart = yaml.safe_load((REPO / "charts/mdp-platform/values.yaml").read_text())
    airflow = yaml.safe_load((REPO / "charts/upstream/airflow-values.yaml").read_text())
    assert airflow["data"]["metadataSecretName"] == chart["credentials"]["airflowMetadata"]["name"]
    assert {"name": "MDP_PROFILE", "value": "kind"} in airflow["env"]
    assert airflow["ports"]["apiServer"] == 8088


def kind_mappings() -> dict[int, int]:
    cfg = yaml.safe_load((REPO / "kind/cluster.yaml").read_text())
    (node,) = [n for n in cfg["nodes"] if n["role"] == "control-plane"]
    assert re.match(r"^kindest/node:v1\.36\.\d+@sha256:[0-9a-f]{64}$", node["image"])
    return {m["hostPort"]: m["containerPort"] for m in node["extraPortMappings"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kind_ports_reach_node_ports(overlay_docs, overlay):
    mappings = kind_mappings()
    assert PLATFORM_PORTS <= set(mappings)
    node_ports = {
        p["nodePort"]: (d["metadata"]["name"], p["port"])
        for d in overlay_docs[overlay]
        if d["kind"] == "Service" and d["spec"].get("type") == "NodePort"
        for p in d["spec"]["ports"]
    }
    for host, node in mappings.items():
        assert node in node_ports, f"host {host} -> nodePort {node}: no Service"
        assert node_ports[node][1] == host, f"{node_ports[node][0]} serves {node_ports[node][1]}, not {host}"


def test_compose_exposes_platform_ports(compose_config):
    published = {int(p["published"]) for s in compose_config["services"].values() for p in s.get("ports", [])}
    assert PLATFORM_PORTS <= published


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_airflow_node_port_is_the_projects_own_service(overlay_docs, overlay):
    """Issue 29: versions of the Airflow chart's api-server Service template disagree on rendering
    `nodePort` (one renders only name and port), and 1.22.0 cannot be rendered offline. So the kind
    overlays carry their own NodePort Service, selecting the chart's API server pod labels
    (tier, component, release in the chart's api-server templates), and the chart's stays ClusterIP."""
    services = [
        d for d in overlay_docs[overlay] if d["kind"] == "Service" and d["metadata"].get("namespace") == "airflow"
    ]
    (svc,) = services
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["selector"] == {"tier": "airflow", "component": "api-server", "release": "airflow"}
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["nodePort"]) == (8088, 8088, 30088)
    releases = yaml.safe_load((REPO / "charts/upstream/releases.yaml").read_text())["releases"]
    assert {r["name"]: r["namespace"] for r in releases}["airflow"] == "airflow"
    for f in ("airflow-values.yaml", "airflow-values-dev.yaml"):
        values = yaml.safe_load((REPO / "charts/upstream" / f).read_text())
        assert "service" not in values.get("apiServer", {}), f"{f}: a second NodePort 30088 would clash"
    mk = subprocess.run(
        ["make", "-n", "-f", "mk/deploy.mk", "deploy", f"OVERLAY={overlay}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "kubernetes.io/service-name=mdp-airflow-api-server-nodeport" in mk, "deploy checks it has endpoints"


def test_create_user_job_is_off_by_its_current_key():
    airflow = yaml.safe_load((REPO / "charts/upstream/airflow-values.yaml").read_text())
    assert airflow["createUserJob"]["enabled"] is False


# Strimzi 1.2.0's default Kafka (kafka-versions.yaml at tag 1.2.0): what the kind path runs, since the
# chart leaves the version to the operator.
STRIMZI_DEFAULT_KAFKA = "4.3.1"


def test_compose_runs_the_kafka_and_postgres_that_kind_runs(compose_config, chart_renders):
    """Issue 29, item 11: compose ran Kafka 4.1.0 while Strimzi runs 4.3; Postgres was 16.10."""
    services = compose_config["services"]
    assert {services[s]["image"] for s in ("kafka", "kafka-init")} == {f"apache/kafka:{STRIMZI_DEFAULT_KAFKA}"}
    kafka = find(chart_renders["dev"], "Kafka", "mdp")
    assert "version" not in kafka["spec"]["kafka"], "the operator's default is what compose pins"
    pg = find(chart_renders["default"], "StatefulSet", "mdp-postgres")
    (c,) = pg["spec"]["template"]["spec"]["containers"]
    assert c["image"] == services["postgres"]["image"]
    minor = int(c["image"].split(":16.")[1])
    assert minor >= 13, "16.13 (2026-02) is the newest 16.x seen; older patches lack its security fixes"
