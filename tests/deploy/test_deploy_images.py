"""images/: one Dockerfile per role, hadolint-clean, pinned bases, non-root, and the S3A jars
fetched at build time in step with the Hadoop inside pyspark."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import REPO, tool

pytestmark = pytest.mark.deploy

ROLES = ("airflow", "spark", "jobs")
DOCKERFILES = sorted((REPO / "images").glob("*/Dockerfile"))


def test_one_dockerfile_per_role():
    assert {p.parent.name for p in DOCKERFILES} == set(ROLES)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_clean(dockerfile: Path):
    proc = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def test_hadolint_would_catch_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def args_and_froms(text: str) -> tuple[dict[str, str], list[str]]:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    froms = [
        re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), f)
        for f in re.findall(r"^FROM (\S+)", text, re.M)
    ]
    return args, froms


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_bases_pinned_and_user_non_root(dockerfile: Path):
    text = dockerfile.read_text()
    _, froms = args_and_froms(text)
    assert froms
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
    for ref in froms:
        if ref in stages:
            continue
        assert re.search(r":[\w][\w.-]*$", ref) and not ref.endswith(":latest"), f"{dockerfile}: {ref}"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users, f"{dockerfile}: no USER"
    last = users[-1]
    uid = re.sub(r"\$\{(\w+)\}", lambda m: args_and_froms(text)[0][m.group(1)], last)
    assert uid not in ("0", "root"), f"{dockerfile}: runs as {last}"


@pytest.mark.parametrize("role", ROLES)
def test_root_dockerignore_sends_what_each_image_copies(role):
    # The classic builder (docker and compose without buildx) reads only the context root's .dockerignore.
    assert not (REPO / "images" / role / "Dockerfile.dockerignore").exists(), "one allow-list, at the root"
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") if "*" in lines else -1] == "*", "context should be allow-listed"
    allowed = {line.lstrip("!").rstrip("/") for line in lines if line.startswith("!")}
    copied = set(re.findall(r"^COPY (?:--\S+ )*(\S+)", (REPO / "images" / role / "Dockerfile").read_text(), re.M))
    for src in copied:
        if src.startswith("/") or src.startswith("${"):
            continue
        assert any(src.rstrip("/") == a or src.startswith(a + "/") for a in allowed), f"{role}: {src} not sent"
    assert {".venv", ".cache", ".mdp"}.isdisjoint(allowed)
    assert {"images/build-inputs", ".cache/build-inputs"} <= allowed  # BUILD_INPUTS (offline builds)
    # The offline wheels and jars are served over HTTP (WHEELS_URL, S3A_JARS_DIR=http://...), so no
    # context carries them: excluded again after the folder is allowed (the last matching line wins).
    allow = lines.index("!.cache/build-inputs/")
    for heavy in (".cache/build-inputs/wheels/", ".cache/build-inputs/jars/"):
        assert heavy in lines and lines.index(heavy) > allow, heavy


def installed_hadoop_version() -> str:
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    assert jars, "pyspark ships no hadoop-client-api jar"
    return jars[0].name.removeprefix("hadoop-client-api-").removesuffix(".jar")


@pytest.mark.parametrize("role", ("airflow", "spark"))
def test_s3a_jars_match_pyspark_hadoop(role):
    text = (REPO / "images" / role / "Dockerfile").read_text()
    args, _ = args_and_froms(text)
    assert args["HADOOP_VERSION"] == installed_hadoop_version()
    assert re.match(r"^2\.\d+\.\d+$", args["AWS_SDK_VERSION"]), "Hadoop 3.4+ needs the AWS SDK v2 bundle"
    # Hadoop 3.5.0's pom names AWS SDK 2.35.4 (HADOOP-19654); fetch_s3a_jars.py refuses anything else.
    assert (args["HADOOP_VERSION"], args["AWS_SDK_VERSION"]) != ("3.5.0", "2.29.52")
    assert "fetch_s3a_jars.py" in text and "S3A_JARS_DIR" in text


def test_jobs_image_has_no_java_or_s3a_jars():
    # land_bronze, validate_silver (pyarrow), train_model, the MLflow and model servers start no JVM.
    text = (REPO / "images" / "jobs" / "Dockerfile").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "openjdk" not in code and "JAVA_HOME" not in code and "fetch_s3a_jars" not in code


def test_spark_image_layout():
    text = (REPO / "images" / "spark" / "Dockerfile").read_text()
    # The image path: local:///opt/mdp/spark_apps
    assert re.search(r"^COPY (--\S+ )*spark_apps \./spark_apps$", text, re.M) and "WORKDIR /opt/mdp" in text
    assert 'ENTRYPOINT ["/opt/entrypoint.sh"]' in text
    # Only Java, tini and the Kubernetes entrypoint come from the Spark image: a published 4.x tag.
    assert re.search(r"^ARG SPARK_IMAGE=apache/spark:4\.\d+\.\d+-scala2\.13-java17-ubuntu$", text, re.M)
    assert "apache/spark:4.3.0" not in text  # never published (apache/spark-docker has no 4.3.0)
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^pyspark==4\.3\.0$", lock, re.M), "image Spark and the locked pyspark must agree"
    airflow = (REPO / "images" / "airflow" / "Dockerfile").read_text()
    assert "/opt/airflow/dags/" in airflow and "apache/airflow:3.3.2-python3.11" in airflow
    assert re.search(r"^apache-airflow==3\.3\.2$", lock, re.M)


# --- layers that a source change keeps ---------------------------------------------------------

SOURCES = ("mdp", "ingestion", "spark_apps", "validation", "training", "scoring")


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("role", ROLES)
def test_dependencies_install_before_the_sources_are_copied(role):
    steps = instructions((REPO / "images" / role / "Dockerfile").read_text())
    deps = [i for i, s in enumerate(steps) if s.startswith("RUN") and "--constraint requirements.lock" in s]
    assert len(deps) == 1, f"{role}: one locked dependency install"
    assert "project_deps.py" in steps[deps[0]] and "-r /tmp/requirements.txt" in steps[deps[0]]
    # Before it, only the lock and pyproject.toml of the repo's own files (plus the build inputs).
    before = [s for s in steps[: deps[0]] if s.startswith("COPY") and "--from=" not in s]
    for step in before:
        srcs = step.split()[1:-1]
        assert all(
            w.startswith("--")
            or w in ("requirements.lock", "pyproject.toml", "images/common/")
            or w.startswith("${BUILD_INPUTS}")
            for w in srcs
        ), f"{role}: {step} before the dependency install"
    copies = [i for i, s in enumerate(steps) if s.startswith("COPY") and any(f" {d} ./{d}" in s for d in SOURCES)]
    assert len(copies) == len(SOURCES) and min(copies) > deps[0], f"{role}: sources copied before the dependencies"
    project = [s for s in steps[max(copies) :] if s.startswith("RUN") and "pip install" in s]
    assert len(project) == 1 and "--no-deps" in project[0] and project[0].split("&&")[0].rstrip().endswith(" ."), (
        project
    )


def deps_stage(text: str) -> str:
    m = re.search(r"^FROM \S+ AS deps$.*?(?=^FROM )", text, re.M | re.S)
    assert m, "no deps stage"
    return m.group(0)


def test_spark_and_jobs_share_one_deps_stage():
    """Byte for byte the same stage, so the second sequential build (make images, make compose-up) takes
    its layers from the classic builder's cache instead of installing the lock again."""
    spark = (REPO / "images" / "spark" / "Dockerfile").read_text()
    jobs = (REPO / "images" / "jobs" / "Dockerfile").read_text()
    assert deps_stage(spark) == deps_stage(jobs)
    assert re.search(r"^ARG PYTHON_IMAGE=(\S+)$", spark, re.M).group(1) == re.search(
        r"^ARG PYTHON_IMAGE=(\S+)$", jobs, re.M
    ).group(1)
    assert "fetch_s3a_jars" not in deps_stage(spark)  # the jars are Spark's only: a stage of their own
    for text in (spark, jobs):
        assert "COPY --from=deps /opt/venv /opt/venv" in text


def test_project_deps_lists_the_dependencies_extras_and_build_backend(tmp_path):
    import tomllib

    out = tmp_path / "req.txt"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "images" / "common" / "project_deps.py"),
            str(REPO / "pyproject.toml"),
            "--extra",
            "airflow",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    want = (
        data["project"]["dependencies"]
        + data["project"]["optional-dependencies"]["airflow"]
        + data["build-system"]["requires"]
    )
    assert out.read_text().splitlines() == want


def test_with_build_inputs_takes_a_wheelhouse_url(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "WHEELS_URL": "http://172.17.0.1:18765/wheels/", "PIP_OFFLINE": "1"}
    proc = subprocess.run(
        ["sh", str(REPO / "images" / "common" / "with_build_inputs.sh"), "env"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    got = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert got["PIP_FIND_LINKS"] == "http://172.17.0.1:18765/wheels/"
    assert got["PIP_TRUSTED_HOST"] == "172.17.0.1" and got["PIP_NO_INDEX"] == "1"


# --- the build-time downloader, against a fake Maven repo (file://) ------------------------------


def fake_maven(root: Path, hadoop: str, sdk: str, pom_sdk: str | None = None, corrupt: bool = False) -> None:
    def put(group: str, artifact: str, version: str, data: bytes) -> None:
        d = root / group.replace(".", "/") / artifact / version
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{artifact}-{version}.jar").write_bytes(data)
        digest = hashlib.sha1(b"other" if corrupt else data).hexdigest()
        (d / f"{artifact}-{version}.jar.sha1").write_text(digest + "\n")

    put("org.apache.hadoop", "hadoop-aws", hadoop, b"aws-jar")
    put("software.amazon.awssdk", "bundle", sdk, b"sdk-jar")
    pom = root / "org/apache/hadoop/hadoop-project" / hadoop
    pom.mkdir(parents=True, exist_ok=True)
    (pom / f"hadoop-project-{hadoop}.pom").write_text(
        f"<project><properties><aws-java-sdk-v2.version>{pom_sdk or sdk}</aws-java-sdk-v2.version></properties></project>"
    )


def run_fetch(repo_root: Path, dest: Path, hadoop: str, sdk: str):
    dest.mkdir(exist_ok=True)
    if not list(dest.glob("hadoop-client-api-*.jar")):  # what pyspark ships
        (dest / f"hadoop-client-api-{hadoop}.jar").write_bytes(b"x")
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "images" / "common" / "fetch_s3a_jars.py"),
            "--hadoop",
            hadoop,
            "--aws-sdk",
            sdk,
            "--dest",
            str(dest),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MAVEN_REPO": repo_root.as_uri(), "PATH": "/usr/bin:/bin"},
    )


def test_fetch_s3a_jars_downloads_and_verifies(tmp_path):
    fake_maven(tmp_path / "m2", "3.5.0", "2.35.4")
    proc = run_fetch(tmp_path / "m2", tmp_path / "jars", "3.5.0", "2.35.4")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "jars" / "hadoop-aws-3.5.0.jar").read_bytes() == b"aws-jar"
    assert (tmp_path / "jars" / "bundle-2.35.4.jar").read_bytes() == b"sdk-jar"


def test_fetch_s3a_jars_stops_the_old_sdk_pin(tmp_path):
    # The pin the images had: Hadoop 3.5.0's pom names 2.35.4, so the build stopped here.
    fake_maven(tmp_path / "m2", "3.5.0", "2.35.4")
    proc = run_fetch(tmp_path / "m2", tmp_path / "jars", "3.5.0", "2.29.52")
    assert proc.returncode != 0 and "AWS SDK 2.35.4, not 2.29.52" in proc.stderr


def run_from_dir(src: Path, dest: Path, pins: str):
    dest.mkdir(exist_ok=True)
    (dest / "hadoop-client-api-3.5.0.jar").write_bytes(b"x")
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "images" / "common" / "fetch_s3a_jars.py"),
            "--hadoop",
            "3.5.0",
            "--aws-sdk",
            "2.35.4",
            "--dest",
            str(dest),
            "--from-dir",
            str(src),
            "--sha256",
            pins,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MAVEN_REPO": "file:///nonexistent", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("case", ["ok", "wrong-sha", "missing", "no-pins"])
def test_fetch_s3a_jars_from_a_folder_checks_sha256(tmp_path, case):
    src = tmp_path / "inputs"
    src.mkdir()
    (src / "hadoop-aws-3.3.1.jar").write_bytes(b"aws")
    (src / "aws-java-sdk-bundle-1.11.901.jar").write_bytes(b"sdk")
    sha = {
        n: hashlib.sha256(b).hexdigest()
        for n, b in [("hadoop-aws-3.3.1.jar", b"aws"), ("aws-java-sdk-bundle-1.11.901.jar", b"sdk")]
    }
    if case == "wrong-sha":
        sha["hadoop-aws-3.3.1.jar"] = hashlib.sha256(b"other").hexdigest()
    if case == "missing":
        sha["hadoop-aws-3.4.0.jar"] = sha.pop("hadoop-aws-3.3.1.jar")
    pins = "" if case == "no-pins" else " ".join(f"{k}={v}" for k, v in sha.items())
    proc = run_from_dir(src, tmp_path / "jars", pins)
    if case == "ok":
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "jars" / "hadoop-aws-3.3.1.jar").read_bytes() == b"aws"
        assert "numeric S3A settings" in proc.stdout  # 3.3.1 with the 3.5 client: session.py's overrides
        return
    assert proc.returncode != 0
    assert {"wrong-sha": "SHA-256 is", "missing": "hadoop-aws-3.4.0.jar: not in", "no-pins": "S3A_JARS_SHA256"}[
        case
    ] in proc.stderr
    assert not (tmp_path / "jars" / "hadoop-aws-3.3.1.jar").exists()


@pytest.mark.parametrize("case", ["ok", "wrong-sha"])
def test_fetch_s3a_jars_from_a_url_checks_sha256(tmp_path, case):
    """S3A_JARS_DIR=http://...: the jars served by base_images.serve_build_inputs, not in the context."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    src = tmp_path / "inputs" / "jars"
    src.mkdir(parents=True)
    (src / "hadoop-aws-3.3.1.jar").write_bytes(b"aws")
    sha = hashlib.sha256(b"aws" if case == "ok" else b"other").hexdigest()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path / "inputs")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = run_from_dir(
            f"http://127.0.0.1:{server.server_address[1]}/jars", tmp_path / "dest", f"hadoop-aws-3.3.1.jar={sha}"
        )
    finally:
        server.shutdown()
        server.server_close()
    if case == "ok":
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "dest" / "hadoop-aws-3.3.1.jar").read_bytes() == b"aws"
    else:
        assert proc.returncode != 0 and "SHA-256 is" in proc.stderr
        assert not (tmp_path / "dest" / "hadoop-aws-3.3.1.jar").exists()


@pytest.mark.parametrize("case", ["sdk-mismatch", "bad-checksum", "hadoop-mismatch"])
def test_fetch_s3a_jars_fails_loudly(tmp_path, case):
    fake_maven(
        tmp_path / "m2",
        "3.5.0",
        "2.35.4",
        pom_sdk="2.30.0" if case == "sdk-mismatch" else None,
        corrupt=case == "bad-checksum",
    )
    dest = tmp_path / "jars"
    if case == "hadoop-mismatch":
        dest.mkdir()
        (dest / "hadoop-client-api-3.4.1.jar").write_bytes(b"x")
    proc = run_fetch(tmp_path / "m2", dest, "3.5.0", "2.35.4")
    assert proc.returncode != 0
    assert {
        "sdk-mismatch": "AWS SDK 2.30.0",
        "bad-checksum": "SHA-1 mismatch",
        "hadoop-mismatch": "hadoop-client-api-3.4.1",
    }[case] in proc.stderr


@pytest.mark.parametrize("role", ["airflow", "spark", "jobs"])
def test_image_build_fails_on_a_dependency_conflict(role):
    """Issue 29: the real apache/airflow base carries providers whose pins may conflict with the lock;
    pip only warns at install, so each image runs `pip check` after its last install."""
    text = (REPO / "images" / role / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    last_install = max(i for i, r in enumerate(runs) if "pip install" in r)
    assert re.search(r"pip install [^&]*\.\s+&&.*&& pip check\s*$", runs[last_install]), runs[last_install]
