"""The kind path's stage commands as containers, against the compose services (issue 10, item 6).

For each stage, the container that the kind deployment would start, taken from mdp/shell/k8s.py:
- a python stage: the KubernetesPodOperator pod (`stage_pod`): image, command, args, env and envFrom;
- a Spark stage: the SparkApplication's driver (`spark_application`): the spark image's entrypoint in
  `driver` mode, i.e. spark-submit of mainApplicationFile with its arguments, sparkConf and the driver's
  env, with a local master inside mdp-spark instead of executors from the operator.
The environment is resolved as Kubernetes does: the `mdp-config` ConfigMap that k8s/base generates
(envFrom), overridden by the pod's env; each secretKeyRef takes the compose .env value of that key.
The user is what Kubernetes would run: the image's USER (the specs set no runAsUser).
Cluster DNS names resolve to the compose containers (--add-host); MLflow is the chart's own MLflow
container (rendered from charts/mdp-platform), since compose's MLflow rejects the cluster host name.
This proves the kind images and commands, not the operators.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
NETWORK = "mdp_default"
KIND_MLFLOW = "mdp-kind-mlflow"
# Cluster Service name -> compose service (same ports).
CLUSTER_SERVICES = {
    "s3.mdp.svc.cluster.local": "s3",
    "mdp-kafka-bootstrap.mdp.svc.cluster.local": "kafka",
    "postgres.mdp.svc.cluster.local": "postgres",
}


def config_map() -> dict[str, str]:
    """`mdp-config` as k8s/base generates it (kubectl kustomize, offline)."""
    kubectl = Path(sys.executable).parent / "kubectl"
    out = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "k8s" / "base")], check=True, capture_output=True, text=True
    ).stdout
    for doc in yaml.safe_load_all(out):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "mdp-config":
            return dict(doc["data"])
    raise AssertionError("k8s/base renders no mdp-config ConfigMap")


def secret_values(env: dict[str, str]) -> dict[tuple[str, str], str]:
    """The chart's Secrets (name, key) with the compose .env values."""
    return {
        ("mdp-s3", "AWS_ACCESS_KEY_ID"): env["S3_ACCESS_KEY_ID"],
        ("mdp-s3", "AWS_SECRET_ACCESS_KEY"): env["S3_SECRET_ACCESS_KEY"],
        ("mdp-postgres", "POSTGRES_PASSWORD"): env["POSTGRES_PASSWORD"],
    }


def resolve_env(
    env: list[dict], env_from: list[dict], cm: dict[str, str], secrets: dict[tuple[str, str], str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for src in env_from:
        if "configMapRef" in src:
            assert src["configMapRef"]["name"] == "mdp-config", src
            out.update(cm)
        elif "secretRef" in src:
            name = src["secretRef"]["name"]
            out.update({k: v for (n, k), v in secrets.items() if n == name})
    for e in env:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            out[e["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            # Kubernetes expands $(VAR) from the variables defined before it.
            out[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), e["value"])
    return out


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in args]


def container_ip(service: str) -> str:
    cid = subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.project=mdp",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[0]
    info = json.loads(subprocess.run(["docker", "inspect", cid], check=True, capture_output=True, text=True).stdout)
    return info[0]["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]


def host_args() -> list[str]:
    return [f"--add-host={name}:{container_ip(svc)}" for name, svc in CLUSTER_SERVICES.items()]


def env_args(env: dict[str, str]) -> list[str]:
    return [a for k, v in sorted(env.items()) for a in ("-e", f"{k}={v}")]


def image_user(image: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Config.User}}", image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def start_chart_mlflow(secrets: dict[tuple[str, str], str]) -> None:
    """The chart's MLflow Deployment as a container, reachable as mlflow.mdp.svc.cluster.local."""
    sys.path.insert(0, str(REPO / "tests" / "deploy"))
    from deploy_helpers import find, render_chart

    dep = find(render_chart(), "Deployment", "mdp-mlflow", "mdp")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = resolve_env(c.get("env", []), c.get("envFrom", []), {}, secrets)
    user = pod.get("securityContext", {}).get("runAsUser")
    subprocess.run(["docker", "rm", "-f", KIND_MLFLOW], capture_output=True)
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            KIND_MLFLOW,
            "--network",
            NETWORK,
            "--network-alias",
            "mlflow.mdp.svc.cluster.local",
            *host_args(),
            *env_args(env),
            *(["--user", str(user)] if user else []),
            "--entrypoint",
            c["command"][0],
            c["image"],
            *c["command"][1:],
            *expand(c["args"], env),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [
                "docker",
                "exec",
                KIND_MLFLOW,
                "python",
                "-c",
                "import urllib.request; urllib.request.urlopen('http://localhost:5001/health', timeout=3)",
            ],
            capture_output=True,
        )
        if probe.returncode == 0:
            return
        time.sleep(3)
    logs = subprocess.run(["docker", "logs", "--tail", "60", KIND_MLFLOW], capture_output=True, text=True)
    raise AssertionError(f"the chart's MLflow did not get healthy:\n{logs.stdout}{logs.stderr}")


def render(args: list[str], run_id: str) -> list[str]:
    """The one template the specs carry, as Airflow renders it: the DAG run's id (k8s.RUN_ID)."""
    from mdp.shell import k8s

    return [a.replace(k8s.RUN_ID, run_id) for a in args]


def run_python_stage(stage, settings, since: str, until: str, cm, secrets, run_id: str) -> dict:
    from mdp.shell import k8s

    pod = k8s.stage_pod(settings, stage, since, until)
    c = pod["spec"]["containers"][0]
    env = resolve_env(c["env"], c["envFrom"], cm, secrets)
    cmd = [
        "docker",
        "run",
        "--rm",
        "--network",
        NETWORK,
        *host_args(),
        *env_args(env),
        "--entrypoint",
        c["command"][0],
        c["image"],
        *c["command"][1:],
        *render(c["args"], run_id),
    ]
    return _run(cmd, c["image"])


def run_spark_driver(stage, settings, since: str, until: str, cm, secrets, run_id: str) -> dict:
    from mdp.shell import k8s

    app = k8s.spark_application(settings, stage, since, until)["spec"]
    d = app["driver"]
    env = resolve_env(d["env"], d["envFrom"], cm, secrets)
    env.setdefault("SPARK_DRIVER_BIND_ADDRESS", "0.0.0.0")  # the operator sets the pod IP
    conf = {**app.get("sparkConf", {}), "spark.driver.memory": d["memory"]}
    submit = [
        "driver",
        "--master",
        "local[*]",
        *[a for k, v in conf.items() for a in ("--conf", f"{k}={v}")],
        app["mainApplicationFile"],
        *render(app["arguments"], run_id),
    ]
    cmd = ["docker", "run", "--rm", "--network", NETWORK, *host_args(), *env_args(env), app["image"], *submit]
    return _run(cmd, app["image"])


def _run(cmd: list[str], image: str) -> dict:
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    return {
        "exit_code": p.returncode,
        "seconds": round(time.monotonic() - t0, 1),
        "user": image_user(image),
        "log": p.stdout[-8000:] + p.stderr[-8000:],
        "command": cmd,
    }


def run_all(platform, run_id: str, hour: datetime | None = None) -> dict[str, dict]:
    """Every stage, in order, for one hour; stops at the first failure. Returns stage -> result."""
    from mdp.core.settings import get_settings
    from mdp.core.stages import STAGES

    settings = get_settings(profile="kind")
    hour = (hour or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    since, until = hour.isoformat(), (hour + timedelta(hours=1)).isoformat()
    cm, secrets = config_map(), secret_values(platform.env)
    start_chart_mlflow(secrets)
    results: dict[str, dict] = {}
    try:
        for stage in STAGES:
            run = run_spark_driver if stage.kind == "spark" else run_python_stage
            results[stage.name] = r = run(stage, settings, since, until, cm, secrets, run_id)
            print(
                f"[kind stage] {stage.name}: exit {r['exit_code']} in {r['seconds']}s as user {r['user']!r}", flush=True
            )
            if r["exit_code"] != 0:
                break
    finally:
        subprocess.run(["docker", "rm", "-f", KIND_MLFLOW], capture_output=True)
    return results
