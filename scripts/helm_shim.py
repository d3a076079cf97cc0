#!/usr/bin/env python3
"""A tiny `helm` stand-in for offline `kustomize --enable-helm` (tests, CI without a helm binary).

helm-python-sdk embeds Helm v4 as a library and ships no binary, while kustomize's helmCharts
generator execs `helm version` and `helm template`. This implements exactly those two calls with
helm_python; anything else fails loudly. Users with a real helm binary do not need it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge like repeated `helm -f`: maps merge, everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def template(argv: list[str]) -> int:
    import helm_python as helm

    p = argparse.ArgumentParser(prog="helm template")
    p.add_argument("name")
    p.add_argument("chart")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--values", "-f", action="append", default=[])
    p.add_argument("--include-crds", action="store_true")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--kube-version")
    p.add_argument("--api-versions", action="append", default=[])
    args = p.parse_args(argv)

    values: dict[str, Any] = {}
    for f in args.values:
        values = _merge(values, helm.values_from_yaml(Path(f).read_text()) or {})
    with helm.Chart.load(args.chart) as chart:
        docs: list[str] = []
        if args.include_crds:
            docs += [c["data"] for c in chart.crds]
        rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
        for path in sorted(rendered):
            body = rendered[path]
            if path.endswith("NOTES.txt") or not body.strip():
                continue
            if args.skip_tests and "/tests/" in path:
                continue
            docs.append(f"# Source: {path}\n{body.strip()}")
    sys.stdout.write("\n---\n".join(docs) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        import helm_python as helm

        print(f"v{helm.helm_sdk_version().lstrip('v')}")
        return 0
    if argv[:1] == ["template"]:
        return template(argv[1:])
    print(f"helm_shim: unsupported command {' '.join(argv)!r} (only version and template)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
