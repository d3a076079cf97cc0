#!/usr/bin/env python3
"""Create, once per cluster, the generated Secrets that a render must not regenerate.

    python scripts/kind_secrets.py --overlay ci      # make deploy OVERLAY=ci, before the overlay
    python scripts/kind_secrets.py --overlay dev     # make deploy (dev), and the Tiltfile
    python scripts/kind_secrets.py --dry-run ...     # print what would be created, touch nothing

`kubectl kustomize --enable-helm` and Tilt's helm() run `helm template`, where the charts'
`lookup` never sees the cluster: a generated credential would be new on every render, rotating
the Secrets while Postgres keeps its first password (and, for Airflow, the JWT and fernet keys on
every Tilt reload). So the cluster is the store: a Secret that exists is kept as it is; a missing
copy is made from an existing one; only a Secret found nowhere is generated. The charts then
reference these by name (ci: credentials.*.existingSecret in values-ci.yaml; Airflow:
fernetKeySecretName, jwtSecretName, apiSecretKeySecretName in charts/upstream/airflow-values.yaml).

Uses $KUBECTL (default "kubectl"); stdlib only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import string
import subprocess
import sys

ALNUM = string.ascii_letters + string.digits
PG_USER = "mdp"  # credentials.postgres.user (charts/mdp-platform/values.yaml)
PG_HOST = "postgres.mdp.svc.cluster.local:5432"


def rand(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def groups(overlay: str) -> list[dict]:
    """Each group: one Secret name, the namespaces that need a copy, and how to make its data.
    `derive` makes data from an earlier group's (the Airflow DB URL from the Postgres password)."""
    out = []
    if overlay == "ci":
        out += [
            {
                "name": "mdp-s3",
                "namespaces": ["mdp", "mdp-jobs"],
                "make": lambda: {"AWS_ACCESS_KEY_ID": rand(20), "AWS_SECRET_ACCESS_KEY": rand(40)},
            },
            {
                "name": "mdp-postgres",
                "namespaces": ["mdp", "mdp-jobs"],
                "make": lambda: {"POSTGRES_PASSWORD": rand(32), "POSTGRES_USER": PG_USER},
            },
            {
                "name": "mdp-airflow-metadata",
                "namespaces": ["airflow"],
                "from": "mdp-postgres",
                "derive": lambda pg: {
                    "connection": f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@{PG_HOST}/airflow"
                },
            },
        ]
    # Every overlay: the Airflow chart's keys, which it would otherwise generate per render.
    out += [
        {
            "name": "mdp-airflow-fernet-key",
            "namespaces": ["airflow"],
            "make": lambda: {"fernet-key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()},
        },
        {"name": "mdp-airflow-jwt", "namespaces": ["airflow"], "make": lambda: {"jwt-secret": rand(48)}},
        {"name": "mdp-airflow-api-secret-key", "namespaces": ["airflow"], "make": lambda: {"api-secret-key": rand(48)}},
    ]
    return out


def get_secret(kubectl: str, ns: str, name: str) -> dict | None:
    p = subprocess.run([kubectl, "-n", ns, "get", "secret", name, "-o", "json"], capture_output=True, text=True)
    if p.returncode != 0:
        if "NotFound" in p.stderr or "not found" in p.stderr:
            return None
        raise SystemExit(f"kubectl get secret {ns}/{name} failed: {p.stderr.strip()}")
    data = json.loads(p.stdout).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def manifest(ns: str, name: str, data: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/part-of": "mini-data-platform",
                "app.kubernetes.io/managed-by": "scripts-kind-secrets",
            },
        },
        "stringData": data,
    }


def plan(overlay: str, existing) -> list[dict]:
    """The Secrets to create. `existing(ns, name)` returns a Secret's data or None."""
    made: dict[str, dict] = {}
    todo = []
    for g in groups(overlay):
        found = {ns: existing(ns, g["name"]) for ns in g["namespaces"]}
        have = next((d for d in found.values() if d is not None), None)
        if have is None:
            have = g["derive"](made[g["from"]]) if "derive" in g else g["make"]()
        made[g["name"]] = have
        todo += [manifest(ns, g["name"], have) for ns, d in found.items() if d is None]
    return todo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--overlay", default="dev")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    kubectl = os.environ.get("KUBECTL", "kubectl")
    todo = plan(args.overlay, lambda ns, name: get_secret(kubectl, ns, name))
    for m in todo:
        print(f"creating Secret {m['metadata']['namespace']}/{m['metadata']['name']}", flush=True)
    if todo and not args.dry_run:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": todo})
        subprocess.run([kubectl, "create", "-f", "-"], input=body, text=True, check=True)
    if not todo:
        print("generated Secrets: all present, kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
