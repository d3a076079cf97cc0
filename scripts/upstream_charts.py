#!/usr/bin/env python3
"""Install (or pull) the pinned upstream charts listed in charts/upstream/releases.yaml.

    python scripts/upstream_charts.py install --phase operators --overlay dev   # before the platform overlay
    python scripts/upstream_charts.py install --phase apps --overlay dev        # after it (Airflow needs Postgres)
    python scripts/upstream_charts.py pull --dest .cache/charts   # for Tilt's helm()
    python scripts/upstream_charts.py install --dry-run           # print the helm commands only
    python scripts/upstream_charts.py values --release airflow --overlay dev   # the values files, one a line

--overlay adds that overlay's `overlay_values` (the kind-only login and NodePort); without it, none.

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


def chart_ref(rel: dict) -> list[str]:
    """The chart argument(s): an OCI reference, or the chart name and its HTTP repository."""
    if rel.get("oci"):
        return [rel["oci"]]
    return [rel["chart"], "--repo", rel["repo"]]


def values_files(rel: dict, overlay: str | None = None) -> list[str]:
    return list(rel.get("values", [])) + list((rel.get("overlay_values") or {}).get(overlay, []) if overlay else [])


def install_command(rel: dict, helm: str = "helm", timeout: str = "15m", overlay: str | None = None) -> list[str]:
    cmd = [
        helm,
        "upgrade",
        "--install",
        rel["name"],
        *chart_ref(rel),
        "--version",
        str(rel["version"]),
        "--namespace",
        rel["namespace"],
        "--create-namespace",
        "--wait",
        "--timeout",
        timeout,
    ]
    for values in values_files(rel, overlay):
        cmd += ["--values", str(ROOT / values)]
    return cmd


def pull_command(rel: dict, dest: Path, helm: str = "helm") -> list[str]:
    return [helm, "pull", *chart_ref(rel), "--version", str(rel["version"]), "--untar", "--untardir", str(dest)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["install", "pull", "list", "values"])
    p.add_argument("--phase", choices=["operators", "apps"], help="default: all phases")
    p.add_argument("--overlay", help="add this overlay's overlay_values (dev, ci); default: none")
    p.add_argument("--release", help="only this release")
    p.add_argument("--dest", type=Path, default=ROOT / ".cache" / "charts")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    helm = os.environ.get("HELM", "helm")

    releases = [r for r in load_releases() if args.phase in (None, r["phase"]) and args.release in (None, r["name"])]
    for rel in releases:
        if args.action == "values":
            print("\n".join(values_files(rel, args.overlay)))
            continue
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
            cmd = install_command(rel, helm, overlay=args.overlay)
        print("+", shlex.join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
