"""The compose platform end to end, with the README's commands, on this machine's Docker engine.

One platform for the module, in order: every service healthy -> events produced through the documented
`producer` step -> customers_end_to_end triggered through the REST API v2 with no params -> lake,
MLflow champion and the Spark master's applications checked -> the kind images' stage commands run as
containers against these services -> the UIs in headless Chromium -> a corrupted batch stopped at
validate_silver -> `docker compose down -v` leaves nothing. On a failure, every service's last log
lines are printed.

Runs are triggered with no params, as a user clicking Trigger: land_bronze lands what the topic holds
and bronze_to_silver merges every Bronze object that Silver has not seen (the incremental core).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import headless_chromium as _chrome

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))  # s3_admin, shared with tests/deploy
import s3_admin
from compose_platform import (
    AIRFLOW,
    DAG_ID,
    HOST_PORTS,
    MLFLOW,
    PROJECT,
    REPO,
    SPARK_UI,
    Platform,
    busy_ports,
    fresh_copy,
    own_addresses,
    port_answers,
)

pytestmark = pytest.mark.containers

# Enough customers (events / 4) that train_model's held-out rows reach min_test_rows (200), so the
# first run sets the champion.
EVENTS = 8000
RUN_TIMEOUT_S = 1800
SCREENSHOTS = REPO / ".cache" / "screenshots"
STATE: dict = {}


@pytest.fixture(scope="module")
def platform(build_args, phase, tmp_path_factory):
    busy = busy_ports()
    if busy:
        pytest.skip(f"host ports the compose file publishes are in use: {', '.join(busy)}")
    stale = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if stale:
        pytest.skip(f"a compose project named {PROJECT!r} already has containers; `docker compose down -v` it first")
    p = Platform(fresh_copy(tmp_path_factory.mktemp("compose") / "mdp"), build_env=build_args)
    # mdp-spark and mdp-jobs as on a first start (`up` builds mdp-jobs); --no-prune keeps the layer cache.
    subprocess.run(["docker", "rmi", "--no-prune", "mdp-spark:0.1.0", "mdp-jobs:0.1.0"], capture_output=True)
    try:
        p.sh("cp", ".env.example", ".env")
        with phase("compose build airflow-*"):
            p.compose("build", "airflow-init", "airflow-webserver", "airflow-scheduler", timeout=3600)
        # As `make compose-up`: mdp-spark first, so mdp-jobs takes their shared deps stage from the cache.
        with phase("compose build spark-master"):
            p.compose("build", "spark-master", timeout=3600)
        with phase("compose up -d (builds mdp-jobs)"):
            p.compose("up", "-d", timeout=3600)
        with phase("compose services healthy"):
            p.wait_healthy(900)
    except BaseException:
        print(p.logs())
        p.compose("down", "-v", "--remove-orphans", check=False)
        raise
    yield p
    if not STATE.get("down"):
        p.compose("down", "-v", "--remove-orphans", check=False)


@pytest.fixture(autouse=True)
def logs_on_failure(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "platform" in request.fixturenames and not STATE.get("down"):
        print(request.getfixturevalue("platform").logs())


def test_every_service_is_healthy(platform):
    assert platform.unhealthy() == []
    env = platform.env
    out = platform.compose(
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        env["POSTGRES_USER"],
        "-d",
        "customers",
        "-At",
        "-c",
        "select datname || ':' || pg_get_userbyid(datdba) from pg_database",
    ).stdout.split()
    # The init SQL takes the owner from .env, not a literal.
    assert f"airflow:{env['POSTGRES_USER']}" in out and f"mlflow:{env['POSTGRES_USER']}" in out


def test_published_ports_answer_on_loopback_only(platform):
    """With the default .env (no MDP_BIND_ADDRESS), the ports answer on 127.0.0.1 and on none of this
    machine's other addresses. Only this machine's own addresses are dialled, 1 s per connect."""
    quiet = [
        f"{n} {p}"
        for n, p in HOST_PORTS.items()
        # model-serving listens once a champion exists (later in this module); it is still checked below.
        if n != "model-serving" and not port_answers("127.0.0.1", p)
    ]
    assert not quiet, f"published ports that do not answer on 127.0.0.1: {quiet}"
    addresses = own_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address to check against")
    exposed = [f"{a}:{p} ({n})" for a in addresses for n, p in HOST_PORTS.items() if port_answers(a, p)]
    assert not exposed, f"published ports that answer off loopback: {exposed}"


def test_s3_admin_ui_asks_for_the_s3_login(platform):
    """SeaweedFS's admin UI on 9001 mints S3 keys: without the login (.env) it refuses (issue 29)."""
    base = f"http://127.0.0.1:{HOST_PORTS['s3-admin-ui']}"
    assert s3_admin.status_without_login(base) == 401
    user, password = platform.env["S3_ACCESS_KEY_ID"], platform.env["S3_SECRET_ACCESS_KEY"]
    assert s3_admin.status_with_login(base, user, "not-the-password") == 401
    assert s3_admin.status_with_login(base, user, password) == 200


def test_producer_sends_events_to_the_topic(platform):
    out = platform.compose("run", "--rm", "producer", "--events", str(EVENTS), timeout=600).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    STATE["produced"] = figures
    assert sum(v for k, v in figures.items() if k in ("events", "produced", "sent")) >= EVENTS, figures


def test_dag_run_triggered_through_the_rest_api_succeeds(platform, phase):
    STATE["t0"] = time.time()
    with phase("DAG run customers_end_to_end"):
        run_id = platform.trigger()
        state = platform.wait_run(run_id, RUN_TIMEOUT_S)
        # Unpausing also starts the latest hourly run (catchup=False); it may run first and take the events.
        runs = platform.wait_runs_since(STATE["t0"], RUN_TIMEOUT_S)
    STATE["run_id"] = run_id
    STATE["runs"] = [r["dag_run_id"] for r in runs]
    assert state == "success", platform.failure_report(run_id)
    assert set(platform.task_states(run_id).values()) == {"success"}
    for r in runs:
        assert r["state"] == "success", platform.failure_report(r["dag_run_id"])


def test_the_run_wrote_every_layer_and_the_champion(platform):
    if "run_id" not in STATE:
        pytest.skip("no DAG run")
    t0 = STATE["t0"]
    for bucket in ("bronze", "silver", "gold"):
        assert platform.objects(bucket, since=t0), f"bucket {bucket} has no object from this run"
    champion = platform.champion()
    assert champion is not None, "customers-churn@champion is not registered:\n" + "\n".join(
        platform.task_log(r, "train_model")[-3000:] for r in STATE["runs"]
    )
    STATE["champion"] = champion["version"]
    artifacts = platform.objects("mlflow", since=t0)
    assert any(k.endswith("MLmodel") for k in artifacts), artifacts[:20]


def test_spark_stages_ran_on_the_standalone_cluster(platform):
    import requests

    if "run_id" not in STATE:
        pytest.skip("no DAG run")

    def ts(v: str) -> float:
        return datetime.fromisoformat(v).timestamp()

    from mdp.core.stages import STAGES

    spark_stages = {s.name for s in STAGES if s.kind == "spark"}
    # The Spark tasks of the runs since the trigger (a stage with nothing new may skip its session).
    windows = {
        (r, ti["task_id"]): (ts(ti["start_date"]), ts(ti["end_date"]))
        for r in STATE["runs"]
        for ti in platform.task_instances(r)
        if ti["task_id"] in spark_stages
    }
    start, end = min(w[0] for w in windows.values()), max(w[1] for w in windows.values())
    master = requests.get(f"{SPARK_UI}/json/", timeout=30).json()
    apps = [a for a in master.get("completedapps", []) if start <= a["starttime"] / 1000 <= end]
    # Each application is a driver started by one of those task processes, and both stages ran on the cluster.
    owners = {next((k for k, (s, e) in windows.items() if s <= a["starttime"] / 1000 <= e), None) for a in apps}
    assert None not in owners, (apps, windows)
    assert {task for _, task in owners} == spark_stages, (apps, windows)
    assert all(a["state"] == "FINISHED" for a in apps), apps
    assert master.get("aliveworkers", len(master.get("workers", []))) >= 1


def test_airflow_and_mlflow_uis_load_in_chromium(platform, tmp_path):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    env = platform.env
    drv = _chrome(tmp_path)
    try:
        # The UI redirects to its login page while it loads: a lookup during a navigation is retried.
        wait = WebDriverWait(drv, 90, ignored_exceptions=(WebDriverException,))
        drv.get(f"{AIRFLOW}/")
        wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "input[name='username']"))).send_keys(
            env["AIRFLOW_ADMIN_USER"]
        )
        drv.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(env["AIRFLOW_ADMIN_PASSWORD"])
        drv.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        drv.get(f"{AIRFLOW}/dags/{DAG_ID}")
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "train_model"))
        time.sleep(2)  # let the grid draw before the screenshot
        drv.save_screenshot(str(SCREENSHOTS / "compose-airflow.png"))
        airflow_text = drv.find_element(By.TAG_NAME, "body").text

        drv.get(f"{MLFLOW}/#/models/customers-churn")
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "customers-churn"))
        time.sleep(2)
        drv.save_screenshot(str(SCREENSHOTS / "compose-mlflow.png"))
        mlflow_text = drv.find_element(By.TAG_NAME, "body").text
    finally:
        drv.quit()
    print(f"\nscreenshots: {SCREENSHOTS / 'compose-airflow.png'}, {SCREENSHOTS / 'compose-mlflow.png'}")
    assert DAG_ID in airflow_text
    assert "champion" in mlflow_text
    for shot in ("compose-airflow.png", "compose-mlflow.png"):
        assert (SCREENSHOTS / shot).stat().st_size > 10_000


def test_kind_stage_commands_run_as_containers(platform, phase):
    """Item 6: each stage as the image, command, args, env and user that mdp/shell/k8s.py generates."""
    import kind_stages

    if "run_id" not in STATE:
        pytest.skip("no DAG run")
    with phase("kind stage containers"):
        results = kind_stages.run_all(platform, run_id="kind-stages-test")
    failed = {k: v for k, v in results.items() if v["exit_code"] != 0}
    assert not failed, "\n\n".join(f"{k}: exit {v['exit_code']}\n{v['log'][-4000:]}" for k, v in failed.items())
    from mdp.core.stages import STAGE_NAMES

    assert list(results) == list(STAGE_NAMES)
    assert all(r["user"] not in ("", "0", "root") for r in results.values()), {k: r["user"] for k, r in results.items()}


CORRUPT = r"""
import json, sys
from datetime import UTC, datetime
from kafka import KafkaProducer
from ingestion.generator import generate_hour
from mdp.core.settings import get_settings
s = get_settings()
hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
n = int(sys.argv[1])
for i, e in enumerate(generate_hour(s.seed + 1000, hour, n, 0.0)):
    doc = json.loads(e.message)
    doc["email"] = f"not-an-email-{i}"
    producer.send(s.topic, key=e.customer_id.encode(), value=json.dumps(doc).encode())
producer.flush()
print(json.dumps({"corrupted": n}))
"""


def test_corrupted_batch_stops_at_validate_silver(platform):
    if "champion" not in STATE:
        pytest.skip("no good run to compare with")
    champion_before = platform.champion()["version"]
    t0 = time.time()
    out = platform.compose(
        "run", "--rm", "--entrypoint", "python", "producer", "-c", CORRUPT, str(EVENTS), timeout=600
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"corrupted": EVENTS}
    run_id = platform.trigger()
    platform.wait_run(run_id, RUN_TIMEOUT_S)
    # Every run from now on stops at the gate: a rejected batch's Bronze objects are read again by the next
    # run. (Besides the triggered run, an hourly one starts if the hour turns.)
    runs = platform.wait_runs_since(t0, RUN_TIMEOUT_S)
    assert run_id in [r["dag_run_id"] for r in runs]
    for r in runs:
        states = platform.task_states(r["dag_run_id"])
        assert r["state"] == "failed", states
        assert states["land_bronze"] == "success" and states["bronze_to_silver"] == "success", platform.failure_report(
            r["dag_run_id"]
        )
        assert states["validate_silver"] == "failed"
        assert states["silver_to_gold"] == "upstream_failed" and states["train_model"] == "upstream_failed"
        assert "Failed expectations" in platform.task_log(r["dag_run_id"], "validate_silver")
    assert platform.champion()["version"] == champion_before


def test_continuous_lander_lands_and_drains(platform):
    """The `follow` profile's lander (main's continuous landing): healthy by its status file, lands new
    events into Bronze while it runs, and stops cleanly on SIGTERM (exit 0) with its offsets committed."""

    def follow(*args: str, **kw):
        return platform.compose("--profile", "follow", *args, **kw)

    t0 = time.time()
    follow("up", "-d", "lander", timeout=600)
    try:
        deadline = time.monotonic() + 240
        while (
            time.monotonic() < deadline
            and follow("ps", "--format", "{{.Health}}", "lander").stdout.strip() != "healthy"
        ):
            time.sleep(5)
        assert follow("ps", "--format", "{{.Health}}", "lander").stdout.strip() == "healthy", platform.logs()
        figures = json.loads(
            platform.compose("run", "--rm", "producer", "--events", "2000", timeout=600).stdout.strip().splitlines()[-1]
        )
        deadline = time.monotonic() + 180
        status: dict = {}
        while time.monotonic() < deadline:
            status = json.loads(follow("exec", "-T", "lander", "cat", "/tmp/lander-status.json").stdout)
            if status["landed"] >= 2000 and status["committed"]:
                break
            time.sleep(5)
        assert status.get("landed", 0) >= 2000, (figures, status)
        assert platform.objects("bronze", since=t0), "the lander wrote no Bronze object"
        follow("stop", "lander", timeout=300)
        exit_code = platform.sh(
            "docker", "inspect", "--format", "{{.State.ExitCode}}", follow("ps", "-aq", "lander").stdout.strip()
        ).stdout.strip()
        assert exit_code == "0", follow("logs", "--tail", "40", "lander").stdout
    finally:
        follow("rm", "-sf", "lander", check=False)


def test_compose_down_leaves_nothing(platform):
    platform.compose("down", "-v", "--remove-orphans", timeout=600)
    STATE["down"] = True
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "-aq"], ["volume", "ls", "-q"], ["network", "ls", "-q"]):
        left = subprocess.run(["docker", *kind, "--filter", label], capture_output=True, text=True).stdout.split()
        assert left == [], f"docker {' '.join(kind)}: {left}"
