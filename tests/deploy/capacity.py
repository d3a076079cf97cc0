"""CPU and memory requests of everything an overlay deploys, summed against the node it must fit.

Four sources, each read from this repo's files (no cluster, no upstream chart here):
- the kind control plane: constants below;
- the platform overlay (`kubectl kustomize`): every pod template, and the Strimzi Kafka CRs;
- the upstream charts: the components that our values turn on, read from our values files, which
  must set explicit `resources.requests` for each (the charts' own defaults are unknown offline);
- the stage pods from `mdp/shell/k8s.py`, built with the overlay's Airflow env (mdp-airflow-env, as
  the DAG builds them): a SparkApplication's driver and executors at once (none when the driver runs
  a local master), or the KubernetesPodOperator pod, whichever is larger.

Run-to-completion Jobs (bucket Job, Airflow's migration Job) only run while the platform starts,
before any DAG run, so the peak is the long-running pods plus the larger of the Jobs and a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# Budgets: the node each overlay must fit, and the share kept free for what requests do not
# cover (the kind node's kubelet, containerd and the VM's own kernel and dockerd).
MARGIN = 0.10
BUDGETS = {
    # GitHub-hosted ubuntu-24.04 runner (public repo): 4 vCPU, 16 GiB. Private repos get 2 vCPU / 8 GiB.
    "ci": {"cpu_m": 4000, "mem_mi": 16 * 1024},
    # The Docker VM (Docker Desktop, colima...) at 4 CPU / 8 GiB: a laptop with 16 GB of RAM.
    "dev": {"cpu_m": 4000, "mem_mi": 8 * 1024},
    # A laptop with 8 GB of RAM: its Docker VM gets 6 GiB at most (Docker Desktop's default is half of
    # the host's memory, 4 GiB); the rest stays with the host OS, the browser and the editor.
    "laptop-8gb": {"cpu_m": 4000, "mem_mi": 6 * 1024},
}

# kind control plane (kindest/node v1.36): requests of its static and system pods. Source:
# kubeadm's static pod manifests (kube-apiserver 250m, kube-controller-manager 200m,
# kube-scheduler 100m, etcd 100m/100Mi), kubeadm's CoreDNS Deployment (2 replicas, 100m/70Mi each)
# and kind's kindnet DaemonSet (100m/50Mi). kube-proxy and local-path-provisioner request nothing.
KIND_CONTROL_PLANE = {
    "kube-apiserver": (250, 0),
    "kube-controller-manager": (200, 0),
    "kube-scheduler": (100, 0),
    "etcd": (100, 100),
    "coredns x2": (200, 140),
    "kindnet": (100, 50),
}

# Upstream components that our values turn on: (release, component, replicas key or None,
# enabled key or None, [values paths of each container's resources]). Where the keys were checked
# against the pinned charts, and where not: docs/DEPLOYMENT.md, "Upstream charts".
UPSTREAM_COMPONENTS = [
    ("strimzi", "cluster-operator", "replicas", None, ["resources"]),
    ("spark-operator", "controller", "controller.replicas", None, ["controller.resources"]),
    ("spark-operator", "webhook", "webhook.replicas", "webhook.enable", ["webhook.resources"]),
    (
        "airflow",
        "scheduler",
        "scheduler.replicas",
        None,
        ["scheduler.resources", "scheduler.logGroomerSidecar.resources"],
    ),
    ("airflow", "api-server", "apiServer.replicas", None, ["apiServer.resources"]),
    (
        "airflow",
        "dag-processor",
        "dagProcessor.replicas",
        None,
        ["dagProcessor.resources", "dagProcessor.logGroomerSidecar.resources"],
    ),
    (
        "airflow",
        "triggerer",
        "triggerer.replicas",
        "triggerer.enabled",
        ["triggerer.resources", "triggerer.logGroomerSidecar.resources"],
    ),
]
# Airflow's migration Job runs once at install, while the other pods wait for it.
UPSTREAM_JOBS = [("airflow", "migrate-database-job", ["migrateDatabaseJob.resources"])]
# Sidecars that the chart adds unless their `enabled` is false.
SIDECAR_ENABLED = {
    "scheduler.logGroomerSidecar.resources": "scheduler.logGroomerSidecar.enabled",
    "dagProcessor.logGroomerSidecar.resources": "dagProcessor.logGroomerSidecar.enabled",
    "triggerer.logGroomerSidecar.resources": "triggerer.logGroomerSidecar.enabled",
}


class MissingRequest(AssertionError):
    pass


def cpu_m(q) -> int:
    s = str(q)
    if s.endswith("m"):
        return int(float(s[:-1]))
    return int(round(float(s) * 1000))


_MEM = {
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "Ti": 1024 * 1024,
    "k": 1000 / 1024**2,
    "M": 1000**2 / 1024**2,
    "G": 1000**3 / 1024**2,
}


def mem_mi(q) -> float:
    s = str(q)
    for suffix in sorted(_MEM, key=len, reverse=True):
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * _MEM[suffix]
    return float(s) / 1024**2  # bytes


def spark_mem_mi(q: str) -> float:
    """Spark's JVM notation: 512m, 1g (binary units)."""
    s = str(q).lower()
    unit = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[s[-1]]
    return float(s[:-1]) * unit


@dataclass
class Item:
    source: str
    name: str
    cpu_m: int
    mem_mi: float
    job: bool = False  # runs to completion at start-up


def requests_of(resources: dict | None, where: str) -> tuple[int, float]:
    req = (resources or {}).get("requests") or {}
    if "cpu" not in req or "memory" not in req:
        raise MissingRequest(f"{where}: no explicit resources.requests cpu and memory")
    return cpu_m(req["cpu"]), mem_mi(req["memory"])


def pod_requests(spec: dict, where: str) -> tuple[int, float]:
    """A pod's effective request: the sum of its containers, or its largest init container."""
    cpu, mem = 0, 0.0
    for c in spec.get("containers", []):
        ccpu, cmem = requests_of(c.get("resources"), f"{where} container {c['name']}")
        cpu, mem = cpu + ccpu, mem + cmem
    for c in spec.get("initContainers", []):
        ccpu, cmem = requests_of(c.get("resources"), f"{where} init container {c['name']}")
        cpu, mem = max(cpu, ccpu), max(mem, cmem)
    return cpu, mem


POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}


def platform_items(docs: list[dict]) -> list[Item]:
    out = []
    for d in docs:
        kind, name = d.get("kind"), d.get("metadata", {}).get("name")
        spec = d.get("spec", {})
        if kind in POD_KINDS:
            pod = spec if kind == "Pod" else spec["template"]["spec"]
            cpu, mem = pod_requests(pod, f"{kind}/{name}")
            n = 1 if kind in ("Job", "Pod", "DaemonSet") else int(spec.get("replicas", 1))
            out.append(Item("platform", f"{kind}/{name} x{n}", cpu * n, mem * n, job=kind == "Job"))
        elif kind == "KafkaNodePool":
            cpu, mem = requests_of(spec.get("resources"), f"KafkaNodePool/{name}")
            n = int(spec["replicas"])
            out.append(Item("platform", f"Kafka broker ({name}) x{n}", cpu * n, mem * n))
        elif kind == "Kafka":
            eo = spec.get("entityOperator") or {}
            cpu, mem = 0, 0.0
            for op in ("topicOperator", "userOperator"):
                if op in eo:
                    c, m = requests_of((eo[op] or {}).get("resources"), f"Kafka/{name} {op}")
                    cpu, mem = cpu + c, mem + m
            if eo:
                out.append(Item("platform", f"Kafka/{name} entity operator", cpu, mem))
    return out


def _get(values: dict, dotted: str, default=None):
    cur = values
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def upstream_values(release: dict, overlay: str | None = None) -> dict:
    files = list(release.get("values", [])) + list((release.get("overlay_values") or {}).get(overlay, []))
    merged: dict = {}
    for f in files:
        merged = _merge(merged, yaml.safe_load((REPO / f).read_text()) or {})
    return merged


def upstream_items(
    releases: list[dict], values: dict[str, dict] | None = None, overlay: str | None = None
) -> list[Item]:
    """`values`: merged values per release name (default: read from the release's files)."""
    by_name = {r["name"]: upstream_values(r, overlay) for r in releases}
    by_name.update(values or {})
    out = []
    for rel, comp, replicas_key, enabled_key, paths in UPSTREAM_COMPONENTS:
        values = by_name[rel]
        if enabled_key and not _get(values, enabled_key, True):
            continue
        n = int(_get(values, replicas_key, 1) or 1) if replicas_key else 1
        cpu, mem = _sum_paths(values, rel, paths)
        out.append(Item(f"upstream {rel}", f"{comp} x{n}", cpu * n, mem * n))
    for rel, comp, paths in UPSTREAM_JOBS:
        cpu, mem = _sum_paths(by_name[rel], rel, paths)
        out.append(Item(f"upstream {rel}", comp, cpu, mem, job=True))
    return out


def _sum_paths(values: dict, rel: str, paths: list[str]) -> tuple[int, float]:
    cpu, mem = 0, 0.0
    for p in paths:
        if p in SIDECAR_ENABLED and _get(values, SIDECAR_ENABLED[p]) is False:
            continue
        c, m = requests_of(_get(values, p), f"{rel} values {p}")
        cpu, mem = cpu + c, mem + m
    return cpu, mem


def spark_pod(role: dict, where: str) -> tuple[int, float]:
    """What the operator asks for a driver or executor pod: coreRequest (else cores) CPU, and
    memory + overhead (memoryOverhead, else Spark's default for Python apps: 40%, at least 384 MiB)."""
    cpu = cpu_m(role["coreRequest"]) if "coreRequest" in role else int(role["cores"]) * 1000
    mem = spark_mem_mi(role["memory"])
    overhead = spark_mem_mi(role["memoryOverhead"]) if "memoryOverhead" in role else max(384.0, 0.4 * mem)
    return cpu, mem + overhead


def kind_settings(env: dict[str, str] | None = None):
    """Settings of the kind profile (what the DAG's pods are built from), with the Airflow pods'
    extra `env` (an overlay's mdp-airflow-env ConfigMap)."""
    import os

    from mdp.core.settings import get_settings

    env = {**(env or {}), "MDP_PROFILE": "kind"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return get_settings()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def airflow_env(docs: list[dict]) -> dict[str, str]:
    """The mdp-airflow-env ConfigMap an overlay renders (the Airflow pods' envFrom)."""
    (cm,) = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "mdp-airflow-env"]
    return dict(cm.get("data") or {})


def executor_pods(spec: dict) -> int:
    """Executor pods a SparkApplication gets: none when the driver's env sets a local master
    (spark_apps/session.py puts it over spark-submit's k8s:// one), else executor.instances."""
    env = {e["name"]: e.get("value") for e in spec["driver"].get("env", [])}
    if str(env.get("MDP_SPARK_MASTER", "")).startswith("local"):
        return 0
    return int(spec["executor"]["instances"])


def stage_items(env: dict[str, str] | None = None) -> list[Item]:
    from mdp.core.stages import STAGES
    from mdp.shell import k8s

    settings = kind_settings(env)
    best: list[Item] = []
    for stage in STAGES:
        if stage.kind == "spark":
            spec = k8s.spark_application(settings, stage, "", "")["spec"]
            items = [Item("stage", f"{stage.name} driver", *spark_pod(spec["driver"], f"{stage.name} driver"))]
            n = executor_pods(spec)
            if n:
                ecpu, emem = spark_pod(spec["executor"], f"{stage.name} executor")
                items.append(Item("stage", f"{stage.name} executor x{n}", ecpu * n, emem * n))
        else:
            pod = k8s.stage_pod(settings, stage, "", "")
            cpu, mem = pod_requests(pod["spec"], f"{stage.name} pod")
            items = [Item("stage", f"{stage.name} pod", cpu, mem)]
        if sum(i.cpu_m for i in items) > sum(i.cpu_m for i in best):
            best = items
    return best


def control_plane_items() -> list[Item]:
    return [Item("kind control plane", n, c, m) for n, (c, m) in KIND_CONTROL_PLANE.items()]


def peak(items: list[Item]) -> tuple[int, float]:
    """Long-running pods + the larger of the start-up Jobs and the running stage."""
    steady = [i for i in items if not i.job and i.source != "stage"]
    jobs = [i for i in items if i.job]
    stage = [i for i in items if i.source == "stage"]
    cpu = sum(i.cpu_m for i in steady) + max(sum(i.cpu_m for i in jobs), sum(i.cpu_m for i in stage))
    mem = sum(i.mem_mi for i in steady) + max(sum(i.mem_mi for i in jobs), sum(i.mem_mi for i in stage))
    return cpu, mem


def report(overlay: str, items: list[Item], budget: str | None = None) -> str:
    lines = [f"{overlay}: {'source':<22} {'pod':<44} {'cpu':>6} {'memory':>8}"]
    for i in items:
        lines.append(
            f"{overlay}: {i.source:<22} {i.name + (' (job)' if i.job else ''):<44} {i.cpu_m:>5}m {i.mem_mi:>6.0f}Mi"
        )
    cpu, mem = peak(items)
    b = BUDGETS[budget or overlay]
    lines.append(
        f"{overlay}: peak {cpu}m CPU, {mem:.0f}Mi; budget {b['cpu_m'] * (1 - MARGIN):.0f}m, "
        f"{b['mem_mi'] * (1 - MARGIN):.0f}Mi ({b['cpu_m']}m / {b['mem_mi']}Mi less {MARGIN:.0%})"
    )
    return "\n".join(lines)
