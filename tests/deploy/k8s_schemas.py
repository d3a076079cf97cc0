"""Validate custom resources (Strimzi, spark-operator) against their CRDs' openAPIV3Schema.

Reusable outside tests/deploy (the DAG tests validate the SparkApplication bodies the DAG builds):

    from tests.deploy.k8s_schemas import schemas_dir, validate_custom_resource
    if schemas_dir() is None: pytest.skip(missing_reason())
    validate_custom_resource(body)          # raises on any error

The CRDs are not in the repo. They are looked up in $MDP_K8S_SCHEMAS, then <repo>/../shared/k8s-schemas,
then <repo>/.cache/k8s-schemas (filled by `make schemas`). Schemas are made strict: every object
schema that lists properties and does not say x-kubernetes-preserve-unknown-fields gets
additionalProperties: false, as the API server would prune (and kubectl --validate=strict reject)
unknown fields, so a typo fails here instead of silently vanishing in the cluster.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
ENV = "MDP_K8S_SCHEMAS"


class UnknownCustomResource(LookupError):
    """No CRD in the schemas folder serves this apiVersion and kind."""


def candidate_dirs() -> list[Path]:
    env = os.environ.get(ENV)
    if env:
        return [Path(env)]
    return [REPO.parent / "shared" / "k8s-schemas", REPO / ".cache" / "k8s-schemas"]


def schemas_dir() -> Path | None:
    """The first candidate folder that holds CRD files, or None."""
    for d in candidate_dirs():
        if d.is_dir() and any(d.rglob("*.yaml")):
            return d
    return None


def missing_reason() -> str:
    tried = ", ".join(str(d) for d in candidate_dirs())
    return f"no CRD schemas found (tried {tried}); set {ENV} or run `make schemas`"


def strict(schema: Any) -> Any:
    """A copy of schema with additionalProperties: false wherever unknown fields are not preserved."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@lru_cache(maxsize=4)
def load_schemas(directory: str | None = None) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict schema, for every served version of every CRD found."""
    root = Path(directory) if directory else schemas_dir()
    if root is None:
        raise FileNotFoundError(missing_reason())
    out: dict[tuple[str, str], dict] = {}
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group = doc["spec"]["group"]
            kind = doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served", True) and "schema" in version:
                    out[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    if not out:
        raise FileNotFoundError(f"no CustomResourceDefinition in {root}")
    return out


def custom_groups() -> set[str]:
    return {api.split("/")[0] for api, _ in load_schemas()}


def is_custom_resource(doc: dict) -> bool:
    api = doc.get("apiVersion", "")
    return "/" in api and api.split("/")[0] in custom_groups()


def validate_custom_resource(doc: dict) -> None:
    """Raise UnknownCustomResource or jsonschema.ValidationError; return None when valid."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    schemas = load_schemas()
    if key not in schemas:
        raise UnknownCustomResource(f"no CRD serves {key[0]} {key[1]} (have: {sorted(schemas)})")
    if not doc.get("metadata", {}).get("name"):
        raise jsonschema.ValidationError(f"{key[1]} has no metadata.name")
    jsonschema.Draft7Validator(schemas[key]).validate(doc)
