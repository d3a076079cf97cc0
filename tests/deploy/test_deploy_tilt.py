"""The Tiltfile runs under starlark-pyo3 with stub Tilt builtins; the stubs record what it names,
and every image, path, chart, values file, workload and object it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from deploy_helpers import REPO

pytestmark = pytest.mark.deploy

UPSTREAM_WORKLOADS = {  # workloads the pinned upstream charts create, by release
    "strimzi": {"strimzi-cluster-operator"},
    "spark-operator": {"spark-operator-controller", "spark-operator-webhook"},
    "airflow": {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor"},  # no triggerer (our values)
}


class Recorder:
    def __init__(self, context: str) -> None:
        self.context = context
        self.calls: dict[str, list[tuple[tuple, dict]]] = {}

    def stub(self, name, result=None):
        def fn(*args, **kwargs):
            self.calls.setdefault(name, []).append((args, kwargs))
            return result(*args, **kwargs) if callable(result) else result

        return fn

    def of(self, name):
        return self.calls.get(name, [])


def run_tiltfile(context: str) -> Recorder:
    import starlark as sl

    rec = Recorder(context)
    m = sl.Module()
    stubs = {
        "allow_k8s_contexts": None,
        "update_settings": None,
        "version_settings": None,
        "watch_file": None,
        "docker_build": None,
        "custom_build": None,
        "local_resource": None,
        "k8s_yaml": None,
        "k8s_resource": None,
        "local": "",
        "sync": lambda src, dest: ("sync", src, dest),
        "port_forward": lambda local, container=None, **kw: ("pf", local, container),
        "link": lambda url, name=None: ("link", url),
        "helm": lambda path, **kw: ("helm", path),
        "kustomize": lambda path, **kw: ("kustomize", path),
        "read_yaml": lambda path: yaml.safe_load((REPO / path).read_text()),
        "k8s_context": lambda: context,
        "_exists": lambda p: (REPO / p).exists(),
    }
    for name, result in stubs.items():
        m.add_callable(name, rec.stub(name, result))
    m["TRIGGER_MODE_MANUAL"] = "manual"
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType, sl.LibraryExtension.Print])
    dialect = sl.Dialect.extended()
    sl.eval(m, sl.parse("prelude", "os = struct(path = struct(exists = _exists))\n", dialect), globals_)
    sl.eval(m, sl.parse("Tiltfile", (REPO / "Tiltfile").read_text(), dialect), globals_)
    return rec


@pytest.fixture(scope="module")
def kind_run() -> Recorder:
    return run_tiltfile("kind-mdp")


@pytest.fixture(scope="module")
def other_run() -> Recorder:
    return run_tiltfile("docker-desktop")


def test_images_and_live_update(kind_run):
    assert kind_run.of("docker_build") == []  # Tilt's own build would load with `kind load docker-image`
    builds = {a[0]: (a, k) for a, k in kind_run.of("custom_build")}
    assert set(builds) == {"mdp-airflow"}
    (args, kw) = builds["mdp-airflow"]
    assert "make -f mk/deploy.mk image ROLE=airflow REF=$EXPECTED_REF" in args[1]
    assert ["sync", "dags", "/opt/airflow/dags"] in kw["live_update"]
    for path in kw["deps"]:
        assert (REPO / path).exists(), path
    images = {a[0]: k for a, k in kind_run.of("local_resource") if a[0].startswith("image-")}
    assert set(images) == {"image-spark", "image-jobs"}
    assert "spark_apps" in images["image-spark"]["deps"]
    for name, kw in images.items():
        role = name.removeprefix("image-")
        assert f"images/{role}/Dockerfile" in kw["deps"] and (REPO / "images" / role / "Dockerfile").is_file()
        assert f"image ROLE={role} REF=mdp-{role}:0.1.0" in kw["cmd"]


def test_tilt_loads_images_the_way_make_kind_load_does(kind_run, other_run):
    """One way to load images: `make -f mk/deploy.mk image KIND_LOAD=1` (an archive), never `kind load docker-image`."""

    ((args, kw),) = kind_run.of("custom_build")
    cmds = {"mdp-airflow": args[1]} | {
        a[0]: k["cmd"] for a, k in kind_run.of("local_resource") if a[0].startswith("image-")
    }
    archives = set()
    for name, cmd in cmds.items():
        assert "load docker-image" not in cmd, name
        assert re.search(r"make -f mk/deploy.mk image ROLE=\w+ REF=\S+ KIND_LOAD=1 CLUSTER=mdp ", cmd), cmd
        archives.add(cmd.split("KIND_ARCHIVE=")[1].split()[0])
    assert len(archives) == 3, "parallel builds need their own archive"
    assert kw["disable_push"] is True  # the command loaded it; Tilt must not load it again
    # Off kind (Docker Desktop shares the engine's images) there is nothing to load.
    ((oargs, okw),) = other_run.of("custom_build")
    assert "KIND_LOAD" not in oargs[1] and okw["disable_push"] is False
    # The target takes one ref and an archive path, as the Tiltfile passes them.
    dry = make_n(
        "image",
        "ROLE=airflow",
        "REF=mdp-airflow:tilt-1",
        "KIND_LOAD=1",
        "CLUSTER=mdp",
        "KIND_ARCHIVE=.cache/kind/tilt-airflow.tar",
    )
    assert "save -o .cache/kind/tilt-airflow.tar mdp-airflow:tilt-1" in dry
    assert "load image-archive --name mdp .cache/kind/tilt-airflow.tar" in dry


def make_n(*args: str, docker: str = "docker") -> str:
    import subprocess

    proc = subprocess.run(
        ["make", "-n", "-f", "mk/deploy.mk", *args, f"DOCKER={docker}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tilt_and_make_images_build_through_one_target(kind_run, tmp_path):
    """Issue 29, item 6: Tilt's builds pass --provenance=false under buildx, as `make images` does,
    because both run mk/deploy.mk's `image` target (the only `docker build` in it)."""
    buildx = tmp_path / "docker"  # a docker whose `buildx version` answers, as with BuildKit
    buildx.write_text("#!/bin/sh\nexit 0\n")
    buildx.chmod(0o755)
    ((args, _),) = kind_run.of("custom_build")
    cmds = [args[1]] + [k["cmd"] for a, k in kind_run.of("local_resource") if a[0].startswith("image-")]
    for cmd in cmds:
        words = cmd.split(" && ")[0].split()
        assert words[:4] == ["make", "-f", "mk/deploy.mk", "image"], cmd
        out = make_n(*words[3:], docker=str(buildx))
        assert f"{buildx} build --provenance=false -f images/" in out, out
    images = make_n("images", docker=str(buildx))
    assert images.count("--provenance=false") == 3
    mk = (REPO / "mk" / "deploy.mk").read_text()
    assert mk.count("$(DOCKER) build ") == 1


def test_tilt_orders_and_restarts_what_runs_the_jobs_image(kind_run):
    """Issue 29, item 7: the bucket Job waits for mdp-jobs to be loaded; a rebuild of mdp-jobs under
    the fixed tag restarts the Deployments that run it (MLflow and model serving)."""
    res = {a[0]: kw for a, kw in kind_run.of("k8s_resource") if a}
    assert "image-jobs" in res["mdp-s3-buckets"]["resource_deps"]
    (jobs,) = [k["cmd"] for a, k in kind_run.of("local_resource") if a[0] == "image-jobs"]
    restart = jobs.split(" && ", 1)[1]
    assert "rollout restart" in restart
    chart = yaml.safe_load((REPO / "charts/mdp-platform/values.yaml").read_text())
    assert chart["images"]["mlflow"] == chart["serving"]["image"] == "mdp-jobs:0.1.0"
    assert {"deployment/mdp-mlflow", "deployment/mdp-model-serving"} <= set(restart.split())
    (spark,) = [k["cmd"] for a, k in kind_run.of("local_resource") if a[0] == "image-spark"]
    assert "rollout restart" not in spark  # only the DAG's fresh pods run mdp-spark


def test_charts_and_overlay_exist(kind_run):
    releases = yaml.safe_load((REPO / "charts/upstream/releases.yaml").read_text())["releases"]
    helm_calls = kind_run.of("helm")
    assert len(helm_calls) == len(releases) == 3
    for (args, kw), rel in zip(helm_calls, releases, strict=False):
        assert args[0] == ".cache/charts/" + rel["chart"]
        assert kw["name"] == rel["name"] and kw["namespace"] == rel["namespace"]
        for values in kw["values"]:
            assert (REPO / values).is_file(), values
    # The overlay is rendered by the deploy tool set (make render), never by Tilt's kustomize(),
    # which runs whatever kustomize is on PATH (issue 29, item 4).
    assert kind_run.of("kustomize") == []
    locals_ = [a[0] for a, _ in kind_run.of("local")]
    assert "make -s -f mk/deploy.mk render OVERLAY=dev" in locals_
    assert locals_[0] == "make -f mk/deploy.mk deploy-tools"
    assert len(kind_run.of("k8s_yaml")) == 4
    assert any("upstream_charts.py pull" in a for a in locals_)
    assert [kw.get("constraint") for _, kw in kind_run.of("version_settings")] == [">=0.36.0"]


def test_resources_name_real_workloads_and_objects(kind_run, overlay_docs):
    docs = overlay_docs["dev"]
    ours = {d["metadata"]["name"] for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job"}}
    known = ours | set().union(*UPSTREAM_WORKLOADS.values())
    objects = {f"{d['metadata']['name']}:{d['kind'].lower()}:{d['metadata'].get('namespace')}" for d in docs}
    local_names = {a[0] for a, _ in kind_run.of("local_resource")}
    defined = set()
    for args, kw in kind_run.of("k8s_resource"):
        if args:
            assert args[0] in known, f"k8s_resource names unknown workload {args[0]}"
            defined.add(args[0])
        else:
            for obj in kw["objects"]:
                assert obj in objects, f"{obj} is not rendered by the dev overlay"
            defined.add(kw["new_name"])
        for dep in kw.get("resource_deps", []):
            assert dep in defined | local_names | known, dep
    assert {"mdp-s3", "mdp-mlflow", "airflow-api-server", "kafka"} <= defined


def host_ports(rec: Recorder) -> set[int]:
    ports = {pf[1] for _, kw in rec.of("k8s_resource") for pf in kw.get("port_forwards", [])}
    for _, kw in rec.of("local_resource"):
        cmd = kw.get("serve_cmd", "")
        if "port-forward" in cmd:
            ports.add(int(cmd.split()[-1].split(":")[0]))
    return ports


def test_ports_forwarded_off_kind(other_run):
    """Off kind, Tilt forwards every host port that kind/cluster.yaml maps (5002 was missing)."""
    kind_cfg = yaml.safe_load((REPO / "kind" / "cluster.yaml").read_text())
    mapped = {m["hostPort"] for n in kind_cfg["nodes"] for m in n.get("extraPortMappings", [])}
    assert host_ports(other_run) == mapped == {8088, 8080, 9000, 9001, 5001, 5002}


def test_tilt_uses_the_dev_overlay_values(kind_run):
    (airflow,) = [kw for args, kw in kind_run.of("helm") if kw["name"] == "airflow"]
    assert airflow["values"] == [
        "charts/upstream/airflow-values.yaml",
        "charts/upstream/airflow-values-dev.yaml",
        "charts/upstream/airflow-values-laptop.yaml",
    ]


def test_ports_served_by_kind_mappings(kind_run):
    assert host_ports(kind_run) == set(), "port-forwards would collide with kind's extraPortMappings"
    urls = {
        ln[1] for _, kw in kind_run.of("k8s_resource") + kind_run.of("local_resource") for ln in kw.get("links", [])
    }
    assert {f"http://localhost:{p}" for p in (8088, 8080, 9001, 5001)} <= urls


def test_only_the_kind_context_is_allowed(kind_run):
    ((args, _),) = kind_run.of("allow_k8s_contexts")
    kind_cfg = yaml.safe_load((REPO / "kind/cluster.yaml").read_text())
    assert args[0] == ["kind-" + kind_cfg["name"]]


# --- every path a Dockerfile COPYs lies inside what Tilt gives its build ---------------------------


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The build-context paths that COPY/ADD read (not --from=stage), with ARG defaults filled in."""
    import json
    import re
    import shlex

    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    args: dict[str, str] = {}
    out: list[str] = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        op, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
        if op == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k.strip()] = v.strip().strip('"')
        if op not in ("COPY", "ADD"):
            continue
        parts = json.loads(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
        flags = [w for w in parts if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        for src in [w for w in parts if not w.startswith("--")][:-1]:
            src = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), src)
            out.append(src.removeprefix("./").rstrip("/") or ".")
    return out


def inside(path: str, roots) -> bool:
    return any(r in (".", "") or path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def tilt_builds(rec: Recorder) -> list[tuple[str, str, list[str]]]:
    """(image or resource, Dockerfile, the paths Tilt gives or watches) for each image build."""
    import re

    builds = []
    for args, kw in rec.of("docker_build"):  # the context is cut down to only=
        context = args[1]
        roots = [f"{context.rstrip('/')}/{p}".removeprefix("./") for p in kw.get("only", [])] or [context]
        builds.append((args[0], f"{context}/{kw.get('dockerfile', 'Dockerfile')}", roots))
    customs = [(a[0], a[1] if len(a) > 1 else kw["command"], kw) for a, kw in rec.of("custom_build")]
    locals_ = [(a[0], kw.get("cmd", ""), kw) for a, kw in rec.of("local_resource")]
    for name, cmd, kw in customs + locals_:
        if cmd.startswith("make -f mk/deploy.mk image "):  # the build command that target runs
            cmd = make_n(*cmd.split(" && ")[0].split()[3:])
        # a `docker build` command: the context is its last path;
        for m in re.finditer(r"docker build\b[^&;|]*?-f (\S+)[^&;|]*? (\S+)(?:\s*$|\s*&&)", cmd):
            # the files that trigger a rebuild are deps=, so each COPY source must be watched too
            builds.append((name, m.group(1), list(kw.get("deps", []))))
    return builds


@pytest.mark.parametrize("context", ["kind-mdp", "docker-desktop"])
def test_dockerfile_copies_lie_inside_what_tilt_gives_the_build(context):
    rec = run_tiltfile(context)
    builds = tilt_builds(rec)
    assert {Path(d).parent.name for _, d, _ in builds} == {"airflow", "spark", "jobs"}
    for name, dockerfile, roots in builds:
        missing = [src for src in dockerfile_sources(REPO / dockerfile) if not inside(src, roots)]
        assert not missing, f"{name}: {dockerfile} copies {missing}, outside what Tilt gives it ({roots})"
