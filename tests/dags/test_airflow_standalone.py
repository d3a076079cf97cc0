"""`mdp airflow standalone` for real: REST API v2 trigger, a headless-Chromium look at the UI, SIGINT stop.

One Airflow serves the three tests, in file order (conftest starts it in the background right
after collection, so its start-up overlaps the other tests; the `standalone` fixture waits):
1. the documented command answers on 127.0.0.1:8088; a run triggered via REST v2 succeeds;
2. Chromium logs in and sees customers_end_to_end with that run (screenshot saved and printed);
3. SIGINT stops it cleanly: no child process (scheduler, workers, API server, ...) is left.
Each task runs in its own process here, so the Spark stages pay a JVM start each.
"""

from __future__ import annotations

import time

import pytest
from airflow_helpers import BASE, DAG_ID, Standalone

from tests.helpers import headless_chromium

pytestmark = pytest.mark.integration

HOUR = "2026-01-01T05:00:00+00:00"
UNTIL = "2026-01-01T06:00:00+00:00"
RUN_TIMEOUT_S = 600


def _task_states(sa: Standalone) -> dict[str, str]:
    r = sa.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{sa.run_id}/taskInstances")
    return {t["task_id"]: t["state"] for t in r.json().get("task_instances", [])} if r.ok else {"error": r.text}


def _task_logs(sa: Standalone, n: int = 40) -> str:
    out = []
    for f in sorted((sa.airflow_home / "logs").glob(f"dag_id={DAG_ID}/**/*.log")):
        lines = f.read_text(errors="replace").splitlines()[-n:]
        out.append(f"--- {f.relative_to(sa.airflow_home)}\n" + "\n".join(lines))
    return "\n".join(out)[-12000:]


def test_rest_api_triggers_a_run_that_succeeds(standalone):
    import requests

    sa = standalone
    r = requests.post(f"{BASE}/auth/token", json={"username": "admin", "password": sa.password}, timeout=30)
    assert r.status_code in (200, 201), r.text
    sa.token = r.json()["access_token"]

    deadline = time.monotonic() + 180  # the DAG processor's first parse
    while (r := sa.api("GET", f"/api/v2/dags/{DAG_ID}")).status_code == 404 and time.monotonic() < deadline:
        time.sleep(2)
    assert r.ok, f"{r.status_code} {r.text}\n{sa.tail()}"
    assert r.json()["timetable_summary"] in ("0 * * * *", "@hourly")
    errors = sa.api("GET", "/api/v2/importErrors").json()
    assert errors["total_entries"] == 0, errors

    assert sa.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).ok
    r = sa.api(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"since": HOUR, "until": UNTIL}}
    )
    assert r.status_code in (200, 201), r.text
    sa.run_id = r.json()["dag_run_id"]

    deadline, state = time.monotonic() + RUN_TIMEOUT_S, None
    while time.monotonic() < deadline:
        state = sa.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{sa.run_id}").json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(5)
    assert state == "success", f"run {sa.run_id} ended {state}: {_task_states(sa)}\n{_task_logs(sa)}"
    assert set(_task_states(sa).values()) == {"success"}

    # The tasks wrote to the MDP_HOME the command was started from.
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{sa.home / '.mdp' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    assert client.get_model_version_by_alias("customers-churn", "champion").version


def test_browser_shows_the_dag_and_its_last_run(standalone, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    sa = standalone
    if not sa.run_id:
        pytest.skip("the REST test did not trigger a run")
    drv = headless_chromium(tmp_path)
    shot = tmp_path / "airflow-ui.png"
    try:
        wait = WebDriverWait(drv, 60)
        drv.get(f"{BASE}/")
        user = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "input[name='username']")))
        user.send_keys("admin")
        drv.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(sa.password)
        drv.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)

        drv.get(f"{BASE}/dags/{DAG_ID}")
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), DAG_ID))
        # "Latest Run" links to the run the REST test triggered, with its state badge.
        badge = (By.CSS_SELECTOR, f"a[href='/dags/{DAG_ID}/runs/{sa.run_id}'] [data-testid='state-badge']")
        state = wait.until(EC.presence_of_element_located(badge)).get_attribute("aria-label")
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "train_model"))
        time.sleep(2)  # let the grid and charts finish drawing before the screenshot
        drv.save_screenshot(str(shot))
        body = drv.find_element(By.TAG_NAME, "body").text
    finally:
        drv.quit()
    print(f"\nAirflow UI screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert DAG_ID in body and "Latest Run" in body
    assert state == "success"


def test_sigint_stops_airflow_without_orphans(standalone):
    children, alive = standalone.stop()
    assert children, "standalone had no child processes to check"
    assert standalone.proc.poll() is not None, f"standalone still running after SIGINT:\n{standalone.tail()}"
    leftovers = [f"{p.pid} {' '.join(p.cmdline()[:4]) if p.is_running() else ''}" for p in alive]
    for p in alive:
        p.kill()
    assert not leftovers, f"orphans after SIGINT: {leftovers}"
