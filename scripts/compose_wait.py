#!/usr/bin/env python3
"""Wait until the compose platform is up: every long-running service healthy, every *-init job exited 0.

    python scripts/compose_wait.py [--timeout 900] [--dir .]

Exit 0 when it is; 1 (with each service's state and the last log lines of the ones that are not)
when a job failed or the time ran out. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def compose(workdir: Path, *args: str) -> str:
    return subprocess.run(["docker", "compose", *args], cwd=workdir, check=True, capture_output=True, text=True).stdout


def not_ready(workdir: Path) -> tuple[list[str], list[str]]:
    """(services not where they should be, *-init jobs that failed)."""
    declared = compose(workdir, "config", "--services").split()
    out = compose(workdir, "ps", "-a", "--format", "json").strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines() if x.strip()]
    seen = {r["Service"]: r for r in rows}
    pending, failed = [], []
    for name in declared:
        r = seen.get(name)
        if r is None:
            pending.append(f"{name}: no container")
        elif name.endswith("-init"):
            if r["State"] == "exited" and r.get("ExitCode") != 0:
                failed.append(f"{name}: exited {r.get('ExitCode')}")
            elif r["State"] != "exited":
                pending.append(f"{name}: {r['State']}")
        elif r["State"] != "running" or r.get("Health") != "healthy":
            pending.append(f"{name}: {r['State']}/{r.get('Health') or 'no healthcheck'}")
    return pending, failed


def wait(workdir: Path, timeout: float) -> list[str]:
    """[] once ready, else what is not."""
    deadline = time.monotonic() + timeout
    pending, failed = ["not checked"], []
    while time.monotonic() < deadline:
        pending, failed = not_ready(workdir)
        if failed or not pending:
            break
        time.sleep(5)
    return failed + pending


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--dir", type=Path, default=Path("."))
    a = p.parse_args(argv)
    t0 = time.monotonic()
    bad = wait(a.dir, a.timeout)
    if not bad:
        print(f"compose: every service is healthy ({time.monotonic() - t0:.0f}s)")
        return 0
    print("compose: not ready: " + "; ".join(bad), file=sys.stderr)
    for item in bad:
        name = item.split(":", 1)[0]
        logs = subprocess.run(
            ["docker", "compose", "logs", "--no-color", "--tail", "30", name], cwd=a.dir, capture_output=True, text=True
        )
        print(f"----- {name} -----\n{logs.stdout}{logs.stderr}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
