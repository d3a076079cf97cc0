"""The three images, built offline by `make images` (build args only), and what the review said of them."""

from __future__ import annotations

import json
import subprocess

import pytest
from compose_platform import REPO

pytestmark = pytest.mark.containers

TAG = "0.1.0"


@pytest.fixture(scope="module")
def images(build_args, phase):
    """`make images` with the offline build args (layers cached from the compose build when it ran)."""
    flags = " ".join(f"--build-arg {k}='{v}'" for k, v in build_args.items())
    with phase("make images (cached after compose)"):
        p = subprocess.run(
            ["make", "-s", "images", f"BUILD_FLAGS={flags}"], cwd=REPO, capture_output=True, text=True, timeout=3600
        )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return {role: f"mdp-{role}:{TAG}" for role in ("airflow", "spark", "jobs")}


def run(image: str, *args: str, entrypoint: str | None = None, **kw) -> subprocess.CompletedProcess:
    cmd = [
        "docker",
        "run",
        "--rm",
        *(["--entrypoint", entrypoint] if entrypoint is not None else []),
        *kw.pop("opts", []),
        image,
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.parametrize("role", ["airflow", "spark", "jobs"])
def test_images_run_as_non_root(images, role):
    user = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Config.User}}", images[role]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user and user.split(":")[0] not in ("0", "root")
    p = run(images[role], "id", "-u", entrypoint="")
    assert p.returncode == 0 and p.stdout.strip() != "0", p.stderr


def test_jobs_image_has_no_java_and_still_runs_its_commands(images):
    assert run(images["jobs"], "-c", "command -v java", entrypoint="/bin/sh").returncode != 0
    # Every python stage and both servers import without a JVM.
    code = (
        "import ingestion.land, validation.gate, training.train, mlflow.server, mlflow.pyfunc.scoring_server; "
        "print('ok')"
    )
    p = run(images["jobs"], "-c", code, entrypoint="python")
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]
    p = run(images["jobs"], "stage", "--help")
    assert p.returncode == 0 and "stage" in p.stdout.lower(), p.stderr


@pytest.mark.parametrize("role", ["airflow", "spark"])
def test_spark_images_carry_java_and_the_pinned_s3a_jars(images, build_args, role):
    code = (
        "import glob, os, pyspark; from spark_apps.session import s3a_on_classpath; "
        "print(s3a_on_classpath(), sorted(os.path.basename(j) for j in glob.glob(os.path.dirname(pyspark.__file__) "
        "+ '/jars/*aws*.jar')))"
    )
    p = run(images[role], "-c", code, entrypoint="python")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.startswith("True"), p.stdout
    for pin in build_args["S3A_JARS_SHA256"].split():
        assert pin.split("=")[0] in p.stdout
    java = run(images[role], "-version", entrypoint="java")
    assert java.returncode == 0 and '"17' in java.stderr, java.stderr


def test_simple_auth_manager_needs_a_writable_passwords_file(images, tmp_path):
    """Review finding: the API server opens the passwords file for writing, so a read-only Secret mount crashes it.

    The kind dev values now copy the Secret into an emptyDir (charts/upstream/airflow-values-dev.yaml).
    """
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwords.json").write_text('{"admin": "admin"}\n')
    (secret / "passwords.json").chmod(0o666)  # only the read-only mount stops the airflow user
    writable = tmp_path / "auth"
    writable.mkdir()
    writable.chmod(0o777)
    code = (
        "from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager as M; "
        "M().init(); print(M.get_passwords())"
    )
    env = [
        "-e",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin",
        "-e",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=/opt/airflow/auth/passwords.json",
        "-e",
        "AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    ]
    readonly = run(
        images["airflow"], "-c", code, entrypoint="python", opts=[*env, "-v", f"{secret}:/opt/airflow/auth:ro"]
    )
    assert readonly.returncode != 0 and "Read-only file system" in readonly.stderr, readonly.stderr[-2000:]
    # The fix: an init container copies the Secret's file into a writable volume.
    copied = run(
        images["airflow"],
        "-c",
        "cp /opt/airflow/auth-secret/passwords.json /opt/airflow/auth/",
        entrypoint="sh",
        opts=["-v", f"{secret}:/opt/airflow/auth-secret:ro", "-v", f"{writable}:/opt/airflow/auth"],
    )
    assert copied.returncode == 0, copied.stderr
    ok = run(images["airflow"], "-c", code, entrypoint="python", opts=[*env, "-v", f"{writable}:/opt/airflow/auth"])
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "'admin': 'admin'" in ok.stdout


@pytest.mark.parametrize("role", ["spark", "jobs"])
def test_build_inputs_stay_out_of_the_runtime_environment(images, role):
    # The offline inputs are build args and a folder used in the build stage only: the runtime image has
    # neither the folder nor their variables. (mdp-airflow is one stage: it still carries the folder.)
    assert run(images[role], "-c", "test ! -e /tmp/build-inputs", entrypoint="/bin/sh").returncode == 0
    env = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Env}}", images[role]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert not any(e.startswith(("PIP_FIND_LINKS", "PIP_NO_INDEX", "S3A_JARS", "BUILD_INPUTS")) for e in env), env
