"""The compose platform as a user runs it: a fresh copy of the repo, the README's commands, the host ports.

The copy keeps the developer's tree untouched (`cp .env.example .env` would overwrite their .env).
It holds what a clone holds (the files git tracks or would track) plus the build inputs of an
offline build, hard-linked from .cache.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import compose_wait  # noqa: E402  (scripts/compose_wait.py: also `make compose-up`)

PROJECT = "mdp"  # docker-compose.yml: name: mdp
DAG_ID = "customers_end_to_end"
# Every port docker-compose.yml publishes (on 127.0.0.1 unless MDP_BIND_ADDRESS says otherwise).
HOST_PORTS = {
    "airflow": 8088,
    "spark-ui": 8080,
    "spark": 7077,
    "s3": 9000,
    "s3-admin-ui": 9001,
    "mlflow": 5001,
    "model-serving": 5002,
    "postgres": 5432,
    "kafka-host": 29092,
}
AIRFLOW = "http://localhost:8088"
MLFLOW = "http://localhost:5001"
SPARK_UI = "http://localhost:8080"
S3 = "http://localhost:9000"


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """A TCP connect to host:port succeeds within timeout seconds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def busy_ports() -> list[str]:
    return [f"{name} {port}" for name, port in HOST_PORTS.items() if port_answers("127.0.0.1", port, 0.5)]


def own_addresses() -> list[str]:
    """This machine's own non-loopback IPv4 addresses: every global-scope interface address (`ip`),
    and the source address of the default route (a UDP connect, which sends no packet)."""
    found: list[str] = []
    ip = shutil.which("ip")
    if ip:
        out = subprocess.run(
            [ip, "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, timeout=10
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                found.append(parts[parts.index("inet") + 1].split("/")[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route, nothing is sent
            found.append(s.getsockname()[0])
        except OSError:
            pass  # no default route
    return [a for a in dict.fromkeys(found) if not a.startswith("127.")]


def fresh_copy(dest: Path) -> Path:
    """The files a clone of this working tree would have (tracked or not ignored), as a new folder."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = REPO / rel
        if not src.is_file():
            continue
        dst = dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    inputs = REPO / ".cache" / "build-inputs"
    if inputs.is_dir():
        shutil.copytree(inputs, dest / ".cache" / "build-inputs", copy_function=os.link)
    return dest


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


@dataclass
class Platform:
    workdir: Path
    build_env: dict[str, str] = field(default_factory=dict)
    token: str = ""

    # ---- commands --------------------------------------------------------------------------------
    def sh(self, *args: str, timeout: float = 1800, check: bool = True, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.build_env}
        p = subprocess.run(list(args), cwd=self.workdir, env=env, text=True, capture_output=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited {p.returncode}:\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}")
        return p

    def compose(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.sh("docker", "compose", *args, **kw)

    @property
    def env(self) -> dict[str, str]:
        return read_env(self.workdir / ".env")

    # ---- state -----------------------------------------------------------------------------------
    def services(self) -> list[dict]:
        out = self.compose("ps", "-a", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def unhealthy(self) -> list[str]:
        """Services not yet where they should be: long-running ones healthy, *-init ones exited 0."""
        pending, failed = compose_wait.not_ready(self.workdir)
        return failed + pending

    def wait_healthy(self, timeout: float) -> None:
        bad = compose_wait.wait(self.workdir, timeout)
        assert not bad, "services not healthy: " + "; ".join(bad)

    def logs(self, tail: int = 40) -> str:
        out = []
        for name in self.compose("config", "--services", check=False).stdout.split():
            p = self.compose("logs", "--no-color", "--tail", str(tail), name, check=False, timeout=120)
            out.append(f"----- {name} (last {tail} lines) -----\n{p.stdout}{p.stderr}")
        return "\n".join(out)

    # ---- Airflow REST API v2 -----------------------------------------------------------------------
    def api(self, method: str, path: str, **kw):
        import requests

        if not self.token:
            r = requests.post(
                f"{AIRFLOW}/auth/token",
                timeout=30,
                json={"username": self.env["AIRFLOW_ADMIN_USER"], "password": self.env["AIRFLOW_ADMIN_PASSWORD"]},
            )
            r.raise_for_status()
            self.token = r.json()["access_token"]
        headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
        r = requests.request(method, AIRFLOW + path, headers=headers, timeout=60, **kw)
        return r

    def trigger(self, conf: dict | None = None) -> str:
        r = self.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        assert r.ok, r.text
        r = self.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        assert r.ok, r.text
        return r.json()["dag_run_id"]

    def wait_run(self, run_id: str, timeout: float) -> str:
        from urllib.parse import quote

        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            r = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")
            if r.status_code == 401:
                self.token = ""
                continue
            state = r.json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(5)
        return f"timeout ({state})"

    def runs_since(self, t0: float) -> list[dict]:
        """Every run of the DAG queued at or after t0 (epoch seconds), oldest first."""
        from datetime import datetime

        runs = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100}).json()["dag_runs"]
        out = [r for r in runs if r.get("queued_at") and datetime.fromisoformat(r["queued_at"]).timestamp() >= t0]
        return sorted(out, key=lambda r: r["queued_at"])

    def wait_runs_since(self, t0: float, timeout: float) -> list[dict]:
        """Waits until every run queued since t0 has ended. Unpausing the DAG starts its latest hourly run
        (catchup=False) beside a triggered one, and the hour can turn during a test: both are real runs."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs_since(t0)
            if all(r["state"] in ("success", "failed") for r in runs) or time.monotonic() > deadline:
                return runs
            time.sleep(5)

    def task_instances(self, run_id: str) -> list[dict]:
        from urllib.parse import quote

        r = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return r.json()["task_instances"]

    def task_states(self, run_id: str) -> dict[str, str]:
        from urllib.parse import quote

        r = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in r.json()["task_instances"]}

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        from urllib.parse import quote

        r = self.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        return json.dumps(r.json()) if r.ok else r.text  # the log lines as JSON; callers search the text

    def failure_report(self, run_id: str) -> str:
        states = self.task_states(run_id)
        out = [f"task states: {states}"]
        for task, state in states.items():
            if state not in ("success", "upstream_failed", None):
                out.append(f"----- log of {task} -----\n{self.task_log(run_id, task)[-5000:]}")
        return "\n".join(out)

    # ---- S3 (SeaweedFS) and MLflow ------------------------------------------------------------------
    def s3(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=S3,
            region_name="us-east-1",
            aws_access_key_id=self.env["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["S3_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )

    def objects(self, bucket: str, since: float = 0.0) -> list[str]:
        """Keys in the bucket modified at or after `since` (epoch seconds)."""
        out = []
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                if o["LastModified"].timestamp() >= since:
                    out.append(o["Key"])
        return out

    def champion(self, name: str = "customers-churn") -> dict | None:
        import requests

        r = requests.get(
            f"{MLFLOW}/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": "champion"}, timeout=30
        )
        return r.json()["model_version"] if r.ok else None
