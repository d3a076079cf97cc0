#!/usr/bin/env python3
"""Trigger a DAG through the Airflow 3 REST API v2 and wait for it to finish.

    python scripts/e2e_trigger.py --url http://localhost:8088 --dag customers_end_to_end

Credentials come from --username/--password or AIRFLOW_USERNAME/AIRFLOW_PASSWORD. A JWT is taken
from POST /auth/token and renewed on 401. Exit 0 when the run succeeds, 1 when it fails or
times out (the task states are printed either way). Stdlib only, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

TERMINAL = {"success", "failed"}


class Airflow:
    def __init__(self, url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.token: str | None = None

    def _send(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def login(self) -> None:
        out = self._send("POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False)
        self.token = out["access_token"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        if self.token is None:
            self.login()
        try:
            return self._send(method, path, body)
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            self.login()  # token expired during a long run
            return self._send(method, path, body)


def wait_until(what: str, check, timeout: float, poll: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError) as exc:
            last = exc
        time.sleep(poll)
    raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("AIRFLOW_URL", "http://localhost:8088"))
    p.add_argument("--dag", default="customers_end_to_end")
    p.add_argument("--username", default=os.environ.get("AIRFLOW_USERNAME"))
    p.add_argument("--password", default=os.environ.get("AIRFLOW_PASSWORD"))
    p.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run")
    p.add_argument("--startup-timeout", type=float, default=600, help="seconds for the API and the DAG to appear")
    p.add_argument("--poll", type=float, default=15)
    args = p.parse_args(argv)
    if not args.username or not args.password:
        p.error("give --username/--password or set AIRFLOW_USERNAME/AIRFLOW_PASSWORD")

    af = Airflow(args.url, args.username, args.password)
    dag = quote(args.dag, safe="")
    wait_until(
        "the API server",
        lambda: af._send("GET", "/api/v2/monitor/health", auth=False),
        args.startup_timeout,
        min(args.poll, 5),
    )
    print(f"API server up at {args.url}", flush=True)
    wait_until(
        f"DAG {args.dag} to be parsed", lambda: af.call("GET", f"/api/v2/dags/{dag}"), args.startup_timeout, args.poll
    )
    af.call("PATCH", f"/api/v2/dags/{dag}", {"is_paused": False})
    run = af.call("POST", f"/api/v2/dags/{dag}/dagRuns", {"logical_date": None, "conf": {}})
    run_id = run["dag_run_id"]
    print(f"triggered {args.dag} run {run_id}", flush=True)

    def finished() -> dict | None:
        state = af.call("GET", f"/api/v2/dags/{dag}/dagRuns/{quote(run_id, safe='')}")
        print(f"  {time.strftime('%H:%M:%S')} run state: {state['state']}", flush=True)
        return state if state["state"] in TERMINAL else None

    try:
        final = wait_until(f"run {run_id}", finished, args.timeout, args.poll)
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        final = {"state": "timeout"}
    tis = af.call("GET", f"/api/v2/dags/{dag}/dagRuns/{quote(run_id, safe='')}/taskInstances")
    for ti in tis.get("task_instances", []):
        print(f"  task {ti['task_id']}: {ti.get('state')}")
    print(f"run {run_id} finished: {final['state']}")
    return 0 if final["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
