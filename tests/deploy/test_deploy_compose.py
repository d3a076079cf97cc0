"""docker-compose.yml: `docker compose config` accepts it, and it keeps the original topology."""

from __future__ import annotations

import subprocess

import pytest
from deploy_helpers import REPO, tool

pytestmark = pytest.mark.deploy

ORIGINAL_SERVICES = {
    "postgres",
    "kafka",
    "s3",
    "s3-init",
    "spark-master",
    "spark-worker",
    "mlflow",
    "airflow-init",
    "airflow-webserver",
    "airflow-scheduler",
    "airflow-dag-processor",
}
ONE_SHOT = {"s3-init", "kafka-init", "airflow-init"}
AIRFLOW = {"airflow-init", "airflow-webserver", "airflow-scheduler", "airflow-dag-processor"}


def test_compose_config_quiet_accepts_file(render_dir):
    env_file = render_dir / "q.env"
    env_file.write_text((REPO / ".env.example").read_text())
    proc = subprocess.run(
        [tool("docker-compose"), "-f", str(REPO / "docker-compose.yml"), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_requires_credentials_from_env(tmp_path):
    """No credential has a default in the compose file: without .env it refuses to render."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = subprocess.run(
        [tool("docker-compose"), "-f", str(REPO / "docker-compose.yml"), "--env-file", str(empty), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "S3_SECRET_ACCESS_KEY" in proc.stderr and "POSTGRES_PASSWORD" in proc.stderr


def test_services_keep_original_names(compose_config):
    assert ORIGINAL_SERVICES <= set(compose_config["services"])
    services = compose_config["services"]
    # The S3 server's old name still resolves, for clients that use http://minio:9000.
    assert "minio" in services["s3"]["networks"]["default"]["aliases"]
    # `docker compose build airflow-init airflow-webserver airflow-scheduler` (the README) builds
    # mdp-airflow once: only airflow-init has the build section; the others run its image.
    assert services["airflow-init"]["build"]["dockerfile"] == "images/airflow/Dockerfile"
    airflow = [n for n in services if n.startswith("airflow-")]
    assert {services[n]["image"] for n in airflow} == {"mdp-airflow:0.1.0"}
    assert [n for n in airflow if "build" in services[n]] == ["airflow-init"]
    for name, image in (("spark-master", "mdp-spark:0.1.0"), ("mlflow", "mdp-jobs:0.1.0")):
        assert services[name]["image"] == image and "dockerfile" in services[name]["build"]


def test_producer_step_is_a_profiled_jobs_service(compose_config, tmp_path):
    """The documented way to put events on the topic: `docker compose run --rm producer`."""
    import json

    assert "producer" not in compose_config["services"]  # `up` leaves it out
    env = tmp_path / "compose.env"
    env.write_text((REPO / ".env.example").read_text())
    proc = subprocess.run(
        [
            tool("docker-compose"),
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(env),
            "--profile",
            "tools",
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
    p = json.loads(proc.stdout)["services"]["producer"]
    assert p["image"] == "mdp-jobs:0.1.0" and p["profiles"] == ["tools"]  # not started by `up`
    assert p["entrypoint"] == ["mdp", "kafka", "produce"] and p["environment"]["MDP_PROFILE"] == "compose"
    assert p["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_postgres_init_uses_the_env_user_and_health_uses_tcp(compose_config):
    pg = compose_config["services"]["postgres"]
    assert "pg_isready -h localhost" in " ".join(pg["healthcheck"]["test"])
    sql = compose_config["configs"]["postgres-databases"]["content"]
    user = pg["environment"]["POSTGRES_USER"]
    assert f'OWNER "{user}"' in sql and sql.count("OWNER") == 2


def published(service: dict) -> set[int]:
    return {int(p["published"]) for p in service.get("ports", [])}


def test_ports(compose_config):
    s = compose_config["services"]
    assert 8088 in published(s["airflow-webserver"])
    assert 8080 in published(s["spark-master"])
    assert {9000, 9001} <= published(s["s3"])
    assert 5001 in published(s["mlflow"])
    assert 5432 in published(s["postgres"])
    assert s["airflow-webserver"]["command"] == ["api-server"], "Airflow 3: the webserver is the API server"


def test_healthchecks_and_dependencies(compose_config):
    services = compose_config["services"]
    for name, svc in services.items():
        if name not in ONE_SHOT:
            assert svc.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        for dep, cond in svc.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == expected, f"{name} -> {dep}"
    for name in AIRFLOW - {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert {"airflow-init", "s3-init", "postgres"} <= set(deps)


def test_named_volumes(compose_config):
    assert {"postgres-data", "s3-data", "kafka-data", "airflow-logs"} <= set(compose_config["volumes"])
    for name in ("postgres", "s3", "kafka"):
        assert any(v["type"] == "volume" for v in compose_config["services"][name]["volumes"]), name


def test_airflow_services_use_compose_profile(compose_config):
    for name in AIRFLOW:
        env = compose_config["services"][name]["environment"]
        assert env["MDP_PROFILE"] == "compose", name
        assert env["AIRFLOW__API__PORT"] == "8088"
        assert env["AWS_ACCESS_KEY_ID"] and env["PGPASSWORD"]


def test_non_root_where_the_image_allows(compose_config):
    s = compose_config["services"]
    for name in AIRFLOW:
        assert s[name]["user"].split(":")[0] == "50000"
    assert s["s3-init"]["user"].split(":")[0] != "0"


def test_pinned_images(compose_config):
    for name, svc in compose_config["services"].items():
        image = svc["image"]
        assert ":" in image.split("/")[-1] and not image.endswith(":latest"), f"{name}: {image}"


def test_dev_logins_live_only_in_env_example(dotenv_example):
    assert dotenv_example["AIRFLOW_ADMIN_USER"] == "admin" and dotenv_example["AIRFLOW_ADMIN_PASSWORD"] == "admin"
    assert dotenv_example["S3_ACCESS_KEY_ID"] == "mdp-dev"
    assert dotenv_example["S3_SECRET_ACCESS_KEY"] == "mdp-dev-s3-password"
    text = (REPO / "docker-compose.yml").read_text()
    for key in ("S3_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET"):
        assert dotenv_example[key] not in text, key


def _render_all_profiles(tmp_path, extra_env: str = "") -> dict:
    """`docker-compose config --format json` with every profile, from .env.example without MDP_BIND_ADDRESS."""
    import json

    env = tmp_path / "bind.env"
    lines = [ln for ln in (REPO / ".env.example").read_text().splitlines() if not ln.startswith("MDP_BIND_ADDRESS=")]
    env.write_text("\n".join(lines) + "\n" + extra_env)
    proc = subprocess.run(
        [
            tool("docker-compose"),
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(env),
            "--profile",
            "*",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["services"]


def test_published_ports_bind_loopback_by_default(tmp_path):
    """The dev logins must not reach the network: every published port has host_ip 127.0.0.1."""
    services = _render_all_profiles(tmp_path)
    ports = [(name, p) for name, svc in services.items() for p in svc.get("ports", [])]
    assert len(ports) >= 9  # 8088, 8080, 7077, 9000, 9001, 5001, 5002, 5432, 29092
    for name, p in ports:
        assert p.get("host_ip") == "127.0.0.1", (
            f"{name}: {p.get('published')} is published on {p.get('host_ip') or 'every interface'}"
        )


def test_one_setting_exposes_every_port(tmp_path):
    """MDP_BIND_ADDRESS (documented in .env.example) moves every published port at once."""
    assert "MDP_BIND_ADDRESS=127.0.0.1" in (REPO / ".env.example").read_text().splitlines()
    services = _render_all_profiles(tmp_path, "MDP_BIND_ADDRESS=0.0.0.0\n")
    hosts = {p.get("host_ip") for svc in services.values() for p in svc.get("ports", [])}
    assert hosts == {"0.0.0.0"}


def test_no_image_from_the_deleted_minio_repositories(compose_config):
    """minio/minio and minio/mc left Docker Hub in September 2026 (docs/DEPLOYMENT.md, "S3 server")."""
    import yaml

    chart = yaml.safe_load((REPO / "charts/mdp-platform/values.yaml").read_text())["images"]
    images = [svc["image"] for svc in compose_config["services"].values()] + [
        v for k, v in chart.items() if k != "pullPolicy"
    ]
    assert not [
        i for i in images if i.split(":")[0] in {"minio/minio", "minio/mc", "quay.io/minio/minio", "quay.io/minio/mc"}
    ]
    assert compose_config["services"]["s3"]["image"] == chart["s3"]


def test_every_upstream_image_has_a_standin_named_after_it():
    """The stand-in of each upstream image exists, and its Dockerfile says which image it imitates."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "containers" / "standins"))
    import base_images

    for image in base_images.upstream_images():
        kind = base_images.standin_kind(image)
        first = (base_images.HERE / kind / "Dockerfile").read_text().splitlines()[0]
        assert first.startswith(f"# Stand-in for {base_images.repository(image)}:"), (image, first)
