"""Continuous landing (`mdp land --follow`) as a chart Deployment and a compose service: off by
default, hardened, probed by the lander's status file, drained on SIGTERM within the grace period."""

from __future__ import annotations

import json
import subprocess

import pytest
from deploy_helpers import KUBE_VERSION, REPO, find, render_chart, tool

pytestmark = pytest.mark.deploy


def test_chart_lander_is_off_by_default(chart_renders):
    for which, docs in chart_renders.items():
        assert not [d for d in docs if d["metadata"]["name"].endswith("-lander")], which


def test_chart_lander_deployment():
    import kubernetes_validate

    values = {
        "lander": {"enabled": True, "replicas": 2, "contract": "subscribers", "flushRecords": 1000, "flushSeconds": 5}
    }
    docs = render_chart(values)
    dep = find(docs, "Deployment", "mdp-lander", "mdp")
    kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert dep["spec"]["replicas"] == 2
    assert c["args"][:2] == ["land", "--follow"]
    assert {"--flush-records=1000", "--flush-seconds=5", "--status-file=/tmp/lander-status.json"} <= set(c["args"])
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MDP_PROFILE"] == "kind" and env["MDP_CONTRACT"] == "subscribers"
    assert env["MDP_KAFKA_BOOTSTRAP"] == "mdp-kafka-bootstrap.mdp.svc.cluster.local:9092"
    assert env["MDP_S3_ENDPOINT"] == "http://s3.mdp.svc.cluster.local:9000"
    assert c["envFrom"] == [{"secretRef": {"name": "mdp-s3"}}]
    # Non-root, no escalation, resources, probes: like the other long-running templates.
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False and c["securityContext"]["capabilities"][
        "drop"
    ] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "/tmp/lander-status.json" in " ".join(c[probe]["exec"]["command"]), probe
    assert spec["terminationGracePeriodSeconds"] >= 60  # time to write and commit the last batch
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


@pytest.mark.parametrize(
    "bad", [{"replicas": 0}, {"flushSeconds": 0}, {"image": "mdp-jobs:latest"}, {"flushRecord": 5}]
)
def test_chart_lander_schema_rejects(bad):
    import helm_python as helm

    with pytest.raises(helm.HelmValuesError):
        render_chart({"lander": {"enabled": True, **bad}})


def _compose(render_dir, *args: str) -> dict:
    env_file = render_dir / "lander.env"
    env_file.write_text((REPO / ".env.example").read_text())
    proc = subprocess.run(
        [
            tool("docker-compose"),
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            *args,
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


def test_compose_lander_only_with_the_follow_profile(compose_config, render_dir):
    assert "lander" not in compose_config["services"]
    lander = _compose(render_dir, "--profile", "follow")["services"]["lander"]
    assert lander["image"] == "mdp-jobs:0.1.0" and lander["profiles"] == ["follow"]
    assert lander["command"][:2] == ["land", "--follow"]
    assert lander["environment"]["MDP_PROFILE"] == "compose" and lander["environment"]["AWS_ACCESS_KEY_ID"]
    assert lander["user"].split(":")[0] != "0"
    assert "/tmp/lander-status.json" in " ".join(lander["healthcheck"]["test"])
    assert {d: c["condition"] for d, c in lander["depends_on"].items()} == {
        "kafka-init": "service_completed_successfully",
        "s3-init": "service_completed_successfully",
    }
