"""Blocker 1 of issue 22: what each overlay deploys fits the node it runs on (capacity.py)."""

from __future__ import annotations

import capacity
import k8s_schemas
import pytest
import yaml
from deploy_helpers import OVERLAYS, REPO, load_docs

RELEASES = yaml.safe_load((REPO / "charts" / "upstream" / "releases.yaml").read_text())["releases"]


def overlay_items(overlay_docs, overlay: str) -> list[capacity.Item]:
    docs = overlay_docs[overlay]
    return (
        capacity.control_plane_items()
        + capacity.platform_items(docs)
        + capacity.upstream_items(RELEASES, overlay=overlay)
        + capacity.stage_items(capacity.airflow_env(docs))
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_fits_its_node(overlay_docs, overlay):
    items = overlay_items(overlay_docs, overlay)
    text = capacity.report(overlay, items)
    print(text)
    cpu, mem = capacity.peak(items)
    b = capacity.BUDGETS[overlay]
    assert cpu <= b["cpu_m"] * (1 - capacity.MARGIN), text
    assert mem <= b["mem_mi"] * (1 - capacity.MARGIN), text


def test_every_upstream_component_has_explicit_requests():
    capacity.upstream_items(RELEASES)  # raises MissingRequest naming the values key
    (airflow,) = [r for r in RELEASES if r["name"] == "airflow"]
    values = capacity.upstream_values(airflow)
    del values["scheduler"]["resources"]["requests"]
    with pytest.raises(capacity.MissingRequest, match="scheduler.resources"):
        capacity.upstream_items(RELEASES, {"airflow": values})


def test_platform_pod_without_requests_fails():
    docs = load_docs("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      containers: [{name: c, image: i}]
""")
    with pytest.raises(capacity.MissingRequest, match="Deployment/x"):
        capacity.platform_items(docs)


def test_spark_pod_sizes():
    assert capacity.spark_pod({"cores": 1, "memory": "2g"}, "d") == (1000, 2048 + 0.4 * 2048)
    assert capacity.spark_pod({"cores": 1, "coreRequest": "250m", "memory": "512m"}, "d") == (250, 512 + 384)


def test_stage_spark_application_matches_crd():
    """The SparkApplication that mdp/shell/k8s.py builds (coreRequest included) is valid v1beta2."""
    if k8s_schemas.schemas_dir() is None:
        pytest.skip(k8s_schemas.missing_reason())
    from mdp.core.stages import STAGES
    from mdp.shell import k8s

    for executors in ("1", "0", "2"):
        settings = capacity.kind_settings({"MDP_KUBERNETES__SPARK_EXECUTORS": executors})
        for stage in STAGES:
            if stage.kind == "spark":
                k8s_schemas.validate_custom_resource(k8s.spark_application(settings, stage, "", ""))


@pytest.mark.parametrize(("overlay", "executors"), [("dev", 0), ("ci", 1)])
def test_overlay_spark_stages_executors(overlay_docs, overlay, executors):
    """The executor pods each overlay's DAG asks for, from its rendered mdp-airflow-env: none in dev
    (the driver runs local[*], so the operator starts no executor), one in ci."""
    from mdp.core.stages import STAGES
    from mdp.shell import k8s

    settings = capacity.kind_settings(capacity.airflow_env(overlay_docs[overlay]))
    assert settings.kubernetes.spark_executors == executors
    spark = [s for s in STAGES if s.kind == "spark"]
    assert spark
    for stage in spark:
        spec = k8s.spark_application(settings, stage, "", "")["spec"]
        assert capacity.executor_pods(spec) == executors
        masters = [e["value"] for e in spec["driver"]["env"] if e["name"] == "MDP_SPARK_MASTER"]
        assert masters == ([] if executors else ["local[*]"])
        assert spec["executor"].get("instances") == (executors or None)


def test_the_sizes_before_issue_22_do_not_fit(overlay_docs, monkeypatch):
    """The check has teeth: the SparkApplication sizes before the fix (cores: 1 and no coreRequest,
    so a whole CPU each; a 2g driver) put the ci overlay over its CPU budget."""
    from mdp.shell import k8s

    monkeypatch.setattr(k8s, "SPARK_DRIVER", {"cores": 1, "coreLimit": "1200m", "memory": "2g"})
    monkeypatch.setattr(k8s, "SPARK_EXECUTOR", {"instances": 1, "cores": 1, "coreLimit": "1200m", "memory": "1g"})
    cpu, mem = capacity.peak(overlay_items(overlay_docs, "ci"))
    assert cpu > capacity.BUDGETS["ci"]["cpu_m"] * (1 - capacity.MARGIN)
    # dev with the executor pod it had then (it is driver-only since issue 29).
    import copy

    dev = copy.deepcopy(overlay_docs["dev"])
    capacity_env = [d for d in dev if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "mdp-airflow-env"]
    capacity_env[0]["data"]["MDP_KUBERNETES__SPARK_EXECUTORS"] = "1"
    _, dev_mem = capacity.peak(overlay_items({"dev": dev}, "dev"))
    assert dev_mem > capacity.BUDGETS["dev"]["mem_mi"] * (1 - capacity.MARGIN)


def test_airflow_runs_one_api_worker_and_no_triggerer(overlay_docs):
    """Issue 29, item 5: Airflow 3's API server starts 4 workers by default (each a full Airflow
    process, OOM-killed at 2 Gi in public reports) against a 384Mi request; the triggerer runs
    nothing for this DAG. Both are the Airflow values of every overlay."""
    (airflow,) = [r for r in RELEASES if r["name"] == "airflow"]
    for overlay in OVERLAYS:
        values = capacity.upstream_values(airflow, overlay)
        assert str(values["config"]["api"]["workers"]) == "1"
        assert values["triggerer"]["enabled"] is False
        names = [i.name for i in overlay_items(overlay_docs, overlay)]
        assert not [n for n in names if n.startswith("triggerer")], names


def test_dev_overlay_fits_an_8gb_laptop(overlay_docs):
    """The dev overlay on a laptop with 8 GB of RAM, whose Docker VM gets 6 GiB (capacity.BUDGETS):
    driver-only Spark stages (jobs.sparkExecutors: 0), no Airflow log groomers, the S3 server and Postgres
    at the ci overlay's requests."""
    items = overlay_items(overlay_docs, "dev")
    text = capacity.report("dev", items, budget="laptop-8gb")
    print(text)
    cpu, mem = capacity.peak(items)
    b = capacity.BUDGETS["laptop-8gb"]
    assert cpu <= b["cpu_m"] * (1 - capacity.MARGIN), text
    assert mem <= b["mem_mi"] * (1 - capacity.MARGIN), text


def test_docs_state_the_budgets_that_are_checked():
    """docs/DEPLOYMENT.md's capacity table names each budget the check uses, with its node size."""
    import re

    docs = (REPO / "docs" / "DEPLOYMENT.md").read_text()
    section = docs.split("## Capacity", 1)[1].split("\n## ", 1)[0]
    for name, b in capacity.BUDGETS.items():
        row = re.search(rf"^\| {re.escape(name)} \|(.*)$", section, re.M)
        assert row, f"no row for budget {name!r} in docs/DEPLOYMENT.md's capacity table"
        cells = [c.strip() for c in row.group(1).split("|")]
        assert f"{b['cpu_m'] // 1000} CPU / {b['mem_mi'] // 1024} GiB" in cells[0], (name, cells)
        limit = f"{b['cpu_m'] * (1 - capacity.MARGIN):.0f}m / {b['mem_mi'] * (1 - capacity.MARGIN):.0f}Mi"
        assert cells[1] == limit, (name, cells)
