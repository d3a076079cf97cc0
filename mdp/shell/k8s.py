"""Kubernetes specs for the stages, built from Settings: the ONE place that knows their shape.

The `kind` profile (settings.runner == "kubernetes") runs each stage out of process:
- a Spark stage becomes a SparkApplication (sparkoperator.k8s.io/v1beta2) whose driver runs
  local:///opt/mdp/mdp/shell/spark_main.py <stage> in the spark image (`spark_application`);
- a python stage becomes a pod running `mdp stage NAME --since .. --until ..` in the jobs image
  (`stage_pod`, and `pod_operator_kwargs` for KubernetesPodOperator).

Everything comes from `settings.kubernetes` (namespace, service accounts, images, config map,
secret references) and from the profile's endpoints. Credentials are never written here: every
secret reaches a pod as env `valueFrom.secretKeyRef`. Non-secret MDP_* settings come from the
config map (envFrom); the endpoints the Airflow side resolved are also set explicitly, so a pod
always talks to the same S3 and MLflow as the profile says.

Plain dicts (Kubernetes manifest shape) are the output, so the same specs can be validated
offline against the CRD / core schemas; only `pod_operator_kwargs` turns them into client models.
`since`/`until` may be Jinja templates: the Airflow operators render them per run.
"""

from __future__ import annotations

import re
from typing import Any

from mdp.core.settings import Settings
from mdp.core.stages import Stage

SPARK_API_VERSION = "sparkoperator.k8s.io/v1beta2"
SPARK_KIND = "SparkApplication"
SPARK_MAIN = "local:///opt/mdp/mdp/shell/spark_main.py"  # in images/spark (WORKDIR /opt/mdp)
SPARK_VERSION = "4.3.0"  # the Spark inside images/spark (pyspark==4.3.0)

# Resources: small, fixed sizes for a laptop-sized kind cluster. Change them here, in one place.
# `cores` alone would request a whole CPU per pod (driver + executor = 2 of a 4-CPU runner);
# coreRequest is the pod's CPU request, cores stays Spark's task slots, coreLimit the cap.
# The pod's memory is `memory` plus Spark's overhead for Python apps (40%, at least 384 MiB).
# tests/deploy/test_deploy_capacity.py sums these with everything else an overlay deploys.
# kubernetes.spark_executors (0 in the dev overlay, for an 8 GB laptop) sets the executor pods; with 0
# the driver runs Spark as local[*] in its own pod and takes the executor's CPU request as well.
SPARK_DRIVER = {"cores": 1, "coreRequest": "250m", "coreLimit": "1200m", "memory": "1g"}
SPARK_EXECUTOR = {"cores": 1, "coreRequest": "250m", "coreLimit": "1200m", "memory": "1g"}
DRIVER_ONLY = {"coreRequest": "500m"}  # its task threads too (local[*] sees 2 CPUs under the 1200m limit)
LOCAL_MASTER = "local[*]"
POD_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}

PART_OF = "mini-data-platform"


def k8s_name(stage: Stage) -> str:
    """A DNS-1123 name for the stage's pod / SparkApplication (no underscores)."""
    return "mdp-" + re.sub(r"[^a-z0-9-]", "-", stage.name.lower())


def image_for(settings: Settings, stage: Stage) -> str:
    images = settings.kubernetes.images
    if stage.image_role not in images:
        raise ValueError(
            f"kubernetes.images has no {stage.image_role!r} image for stage {stage.name} "
            f"(have: {', '.join(images) or 'none'})"
        )
    return images[stage.image_role]


def labels(stage: Stage) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": stage.name.replace("_", "-"),
        "mdp/stage": stage.name.replace("_", "-"),
    }


RUN_ID = "{{ run_id }}"  # Airflow's run id: the stages of one DAG run share it (the gate publishes what b2s staged)


def interval_args(since: str, until: str, run_id: str = RUN_ID) -> list[str]:
    """`mdp stage` arguments: the run id, and the backfill hours (empty strings: incremental)."""
    return ["--run-id", run_id, "--since", since, "--until", until]


def env_from(settings: Settings) -> list[dict]:
    """Non-secret MDP_* settings: the profile's config map, in every pod."""
    return [{"configMapRef": {"name": settings.kubernetes.config_map}}]


def secret_env(settings: Settings) -> list[dict]:
    """Every credential as a secretKeyRef (never a literal value)."""
    out = []
    for ref in settings.kubernetes.secrets.values():
        for env_name, key in ref.keys.items():
            out.append({"name": env_name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": key}}})
    return out


def plain_env(settings: Settings) -> list[dict]:
    """The endpoints Airflow resolved from the profile, so a pod cannot drift from them."""
    env = [{"name": "MDP_PROFILE", "value": settings.profile}]
    if settings.s3_endpoint:
        env += [
            {"name": "MDP_S3_ENDPOINT", "value": settings.s3_endpoint},
            # MLflow's S3 artifact client reads this one, not MDP_S3_ENDPOINT.
            {"name": "MLFLOW_S3_ENDPOINT_URL", "value": settings.s3_endpoint},
        ]
    env.append({"name": "MDP_MLFLOW_TRACKING_URI", "value": settings.mlflow_tracking_uri})
    return env


def stage_env(settings: Settings) -> list[dict]:
    return plain_env(settings) + secret_env(settings)


def spark_application(settings: Settings, stage: Stage, since: str, until: str) -> dict[str, Any]:
    """The SparkApplication a Spark stage submits (spark-operator v1beta2)."""
    if stage.kind != "spark":
        raise ValueError(f"{stage.name} is a {stage.kind} stage, not a Spark one")
    k = settings.kubernetes
    env, env_src, lab = stage_env(settings), env_from(settings), labels(stage)
    driver, driver_env = dict(SPARK_DRIVER), [dict(e) for e in env]
    if k.spark_executors:
        executor = {"instances": k.spark_executors, **SPARK_EXECUTOR}
    else:
        # Driver-only: spark_apps/session.py sets this master over spark-submit's k8s:// one (the
        # env wins over the config map's), so no executor pod is ever asked for. The CRD requires an
        # `executor` (instances >= 1 if given): it stays, without instances or resources.
        driver.update(DRIVER_ONLY)
        driver_env.append({"name": "MDP_SPARK_MASTER", "value": LOCAL_MASTER})
        executor = {}
    return {
        "apiVersion": SPARK_API_VERSION,
        "kind": SPARK_KIND,
        "metadata": {"name": k8s_name(stage), "namespace": k.namespace, "labels": lab},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": image_for(settings, stage),
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": SPARK_MAIN,
            "arguments": [stage.name, *interval_args(since, until)],
            "sparkVersion": SPARK_VERSION,
            # Airflow owns retries; the operator must not rerun a half-done stage on its own.
            "restartPolicy": {"type": "Never"},
            "sparkConf": {
                "spark.sql.session.timeZone": "UTC",
                "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
                "spark.ui.showConsoleProgress": "false",
            },
            "driver": {
                **driver,
                "serviceAccount": k.spark_service_account,
                "labels": dict(lab),
                "env": driver_env,
                "envFrom": [dict(e) for e in env_src],
            },
            "executor": {
                **executor,
                "labels": dict(lab),
                "env": [dict(e) for e in env],
                "envFrom": [dict(e) for e in env_src],
            },
        },
    }


def stage_command(stage: Stage, since: str, until: str) -> tuple[list[str], list[str]]:
    """(command, args) of a python stage's container: the jobs image's `mdp` CLI."""
    return ["mdp"], ["stage", stage.name, *interval_args(since, until)]


def stage_pod(settings: Settings, stage: Stage, since: str, until: str) -> dict[str, Any]:
    """The v1 Pod a python stage runs in (what KubernetesPodOperator launches)."""
    k = settings.kubernetes
    command, args = stage_command(stage, since, until)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": k8s_name(stage), "namespace": k.namespace, "labels": labels(stage)},
        "spec": {
            "serviceAccountName": k.service_account,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "base",  # KubernetesPodOperator's container name
                    "image": image_for(settings, stage),
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "args": args,
                    "env": stage_env(settings),
                    "envFrom": env_from(settings),
                    "resources": POD_RESOURCES,
                    # The tail of the log (e.g. the GX gate's failed expectations and Data Docs
                    # path) becomes the termination message, which the operator puts in the error.
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }


def pod_operator_kwargs(settings: Settings, stage: Stage, since: str, until: str) -> dict[str, Any]:
    """KubernetesPodOperator arguments for `stage_pod` (same image, account, env, secrets)."""
    from kubernetes.client import models as k8s

    pod = stage_pod(settings, stage, since, until)
    container = pod["spec"]["containers"][0]

    def env_var(e: dict) -> k8s.V1EnvVar:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            return k8s.V1EnvVar(
                name=e["name"],
                value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=ref["name"], key=ref["key"])),
            )
        return k8s.V1EnvVar(name=e["name"], value=e["value"])

    return {
        "name": pod["metadata"]["name"],
        "namespace": pod["metadata"]["namespace"],
        "labels": pod["metadata"]["labels"],
        "image": container["image"],
        "image_pull_policy": container["imagePullPolicy"],
        "cmds": container["command"],
        "arguments": container["args"],
        "env_vars": [env_var(e) for e in container["env"]],
        "env_from": [
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=e["configMapRef"]["name"]))
            for e in container["envFrom"]
        ],
        "service_account_name": pod["spec"]["serviceAccountName"],
        "container_resources": k8s.V1ResourceRequirements(**container["resources"]),
        "termination_message_policy": container["terminationMessagePolicy"],
        "in_cluster": True,  # Airflow runs inside the kind cluster (charts/upstream/airflow-values.yaml)
        "get_logs": True,
        "on_finish_action": "delete_pod",
    }


def spark_operator_kwargs(settings: Settings, stage: Stage, since: str, until: str) -> dict[str, Any]:
    """SparkKubernetesOperator arguments for `spark_application`."""
    body = spark_application(settings, stage, since, until)
    return {
        "name": body["metadata"]["name"],
        "namespace": body["metadata"]["namespace"],
        "template_spec": {"spark": body},
        "in_cluster": True,
        "get_logs": True,
        "delete_on_termination": True,
    }
