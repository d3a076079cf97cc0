#!/usr/bin/env python3
"""Install (or pull) the pinned upstream charts listed in charts/upstream/releases.yaml.

    python scripts/upstream_charts.py install --phase operators   # before the platform overlay
    python scripts/upstream_charts.py install --phase apps        # after it (Airflow needs Postgres)
    python scripts/upstream_charts.py pull --dest .cache/charts   # for Tilt's helm()
    python scripts/upstream_charts.py install --dry-run           # print the helm commands only

Uses the `helm` binary ($HELM, default "helm"); stdlib + PyYAML only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "charts" / "upstream" / "releases.yaml"


def load_releases(path: Path = RELEASES) -> list[dict]:
    return yaml.safe_load(path.read_text())["releases"]


def install_command(rel: dict, helm: str = "helm", timeout: str = "15m") -> list[str]:
    cmd = [
        helm, "upgrade", "--install", rel["name"], rel["chart"],
        "--repo", rel["repo"], "--version", str(rel["version"]),
        "--namespace", rel["namespace"], "--create-namespace",
        "--wait", "--timeout", timeout,
    ]
    for values in rel.get("values", []):
        cmd += ["--values", str(ROOT / values)]
    return cmd


def pull_command(rel: dict, dest: Path, helm: str = "helm") -> list[str]:
    return [helm, "pull", rel["chart"], "--repo", rel["repo"], "--version", str(rel["version"]),
            "--untar", "--untardir", str(dest)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["install", "pull", "list"])
    p.add_argument("--phase", choices=["operators", "apps"], help="default: all phases")
    p.add_argument("--dest", type=Path, default=ROOT / ".cache" / "charts")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    helm = os.environ.get("HELM", "helm")

    releases = [r for r in load_releases() if args.phase in (None, r["phase"])]
    for rel in releases:
        if args.action == "list":
            print(f"{rel['name']}\t{rel['chart']}\t{rel['version']}\t{rel['namespace']}\t{rel['phase']}")
            continue
        if args.action == "pull":
            target = args.dest / rel["chart"]
            if target.exists():  # pulled already; versions are pinned, so it is the same chart
                continue
            args.dest.mkdir(parents=True, exist_ok=True)
            cmd = pull_command(rel, args.dest, helm)
        else:
            cmd = install_command(rel, helm)
        print("+", shlex.join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
