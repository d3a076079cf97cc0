"""Each chart's values.schema.json documents every key, as the Airflow chart's does: a description
on every key, and on every key that holds no other keys its values.yaml value as `default`.
Objects with declared keys stay strict (additionalProperties: false)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from deploy_helpers import CHART, REPO

pytestmark = pytest.mark.deploy

CHARTS = sorted(p.parent for p in (REPO / "charts").glob("*/Chart.yaml"))


def _same(a, b) -> bool:
    """Equal as JSON: True is not 1, "1" is not 1."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _schema_gaps(node: dict, path: str = "", in_list: bool = False) -> list[str]:
    """Keys of the schema without a description, leaves without a default, objects that are not strict."""
    gaps = []
    if "properties" in node and node.get("additionalProperties") is not False:
        gaps.append(f"{path or '<root>'}: not strict (additionalProperties: false)")
    for key, prop in node.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        if not prop.get("description"):
            gaps.append(f"{where}: no description")
        if "properties" in prop:
            gaps += _schema_gaps(prop, where, in_list)
        elif "default" not in prop and not in_list:  # a list's items take their values from its default
            gaps.append(f"{where}: no default")
        if "properties" in prop.get("items", {}):
            gaps += _schema_gaps(prop["items"], f"{where}[]", in_list=True)
    return gaps


def _value_gaps(node: dict, values: dict, path: str = "") -> list[str]:
    """Keys of values.yaml that the schema lacks, or whose default differs from the value."""
    gaps = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        prop = node.get("properties", {}).get(key)
        if prop is None:
            gaps.append(f"{where}: not in the schema")
        elif "properties" in prop:
            gaps += _value_gaps(prop, value or {}, where)
        elif not _same(prop.get("default"), value):
            gaps.append(f"{where}: default {prop.get('default')!r} != values.yaml {value!r}")
    return gaps


def gaps(schema: dict, values: dict) -> list[str]:
    return _schema_gaps(schema) + _value_gaps(schema, values)


def _load(chart: Path) -> tuple[dict, dict]:
    schema = json.loads((chart / "values.schema.json").read_text())
    return schema, yaml.safe_load((chart / "values.yaml").read_text())


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_every_value_has_a_description_and_its_default_in_the_schema(chart: Path):
    schema, values = _load(chart)
    assert gaps(schema, values) == []
    assert len(_leaves(values)) >= 100, "values.yaml read as almost empty: the check would be vacuous"


def _leaves(values: dict) -> list:
    return [leaf for v in values.values() for leaf in (_leaves(v) if isinstance(v, dict) and v else [v])]


def test_the_check_finds_each_kind_of_gap():
    schema, values = _load(CHART)
    changed = copy.deepcopy(values)
    changed["s3"]["apiPort"] = 9002
    assert gaps(schema, changed) == ["s3.apiPort: default 9000 != values.yaml 9002"]
    changed = copy.deepcopy(values)
    changed["s3"]["persistence"]["enabled"] = 1  # YAML 1 is not true
    assert gaps(schema, changed) == ["s3.persistence.enabled: default True != values.yaml 1"]
    changed = copy.deepcopy(values)
    changed["s3"]["newKey"] = "x"
    assert gaps(schema, changed) == ["s3.newKey: not in the schema"]

    broken = copy.deepcopy(schema)
    del broken["properties"]["s3"]["properties"]["apiPort"]["description"]
    del broken["properties"]["kafka"]["properties"]["topics"]["items"]["properties"]["name"]["description"]
    del broken["properties"]["s3"]["properties"]["buckets"]["default"]
    del broken["properties"]["s3"]["properties"]["service"]["additionalProperties"]
    assert gaps(broken, values) == [
        "s3.apiPort: no description",
        "s3.service: not strict (additionalProperties: false)",
        "s3.buckets: no default",
        "kafka.topics[].name: no description",
        "s3.buckets: default None != values.yaml ['bronze', 'silver', 'gold', 'mlflow']",
    ]
