"""Serious 4 of issue 22: what `helm install mdp charts/mdp-platform -n mdp` needs besides itself,
as docs/DEPLOYMENT.md ("Helm alone") states it: the namespaces and `mdp-config` from k8s/base, and
Strimzi's CRDs (the operators phase). The chart alone provides neither."""

from __future__ import annotations

import subprocess

from deploy_helpers import REPO, load_docs, render_chart, tool


def base_docs() -> list[dict]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(REPO / "k8s" / "base")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return load_docs(out)


def test_chart_alone_lacks_what_the_docs_say():
    docs = render_chart()
    namespaces = {d["metadata"]["namespace"] for d in docs}
    assert {"mdp-jobs", "airflow"} <= namespaces  # written into, never created
    assert not [d for d in docs if d["kind"] == "Namespace"]
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mdp-config"]
    assert {d["apiVersion"] for d in docs if d["apiVersion"].startswith("kafka.strimzi.io/")} == {"kafka.strimzi.io/v1"}


def test_k8s_base_and_the_operators_fill_the_gap():
    base = base_docs()
    assert {d["metadata"]["name"] for d in base if d["kind"] == "Namespace"} >= {"mdp", "mdp-jobs", "airflow"}
    assert [
        d
        for d in base
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "mdp-config"
        and d["metadata"]["namespace"] == "mdp-jobs"
    ]
    import yaml

    releases = yaml.safe_load((REPO / "charts/upstream/releases.yaml").read_text())["releases"]
    assert {r["name"] for r in releases if r["phase"] == "operators"} >= {"strimzi"}


def test_docs_state_the_prerequisites():
    doc = (REPO / "docs" / "DEPLOYMENT.md").read_text()
    para = doc.split("- **Helm alone**", 1)[1].split("\n\n", 1)[0]
    for needed in (
        "mdp-jobs",
        "airflow",
        "kubectl kustomize k8s/base",
        "mdp-config",
        "upstream_charts.py install --phase operators",
        "Strimzi",
        "not checked",
    ):
        assert needed in para, needed
    assert "works too" not in para
