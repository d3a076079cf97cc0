"""The kind profile, with no cluster: the DAG parses, and what it would submit is right.

- every SparkApplication body validates against the spark-operator v1beta2 CRD (strict);
- every pod names an image, a service account, a config map and secrets that exist in the
  profile's config and in the deployment files (Helm chart, kustomize base) when they exist;
- credentials only ever reach a pod as secretKeyRef.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from airflow_helpers import DAG_ID, REPO

from mdp.core.stages import STAGES

pytestmark = pytest.mark.unit

HOUR = datetime(2026, 3, 1, 5, tzinfo=UTC)
SINCE, UNTIL = HOUR.isoformat(), (HOUR + timedelta(hours=1)).isoformat()
RUN_ID = "scheduled__2026-03-01T05:00:00+00:00"
# A scheduled run is incremental: no backfill hours, only the run id ties the stages together.
RUN_ARGS = ["--run-id", RUN_ID, "--since", "", "--until", ""]
SPARK_STAGES = [s for s in STAGES if s.kind == "spark"]
POD_STAGES = [s for s in STAGES if s.kind != "spark"]


@pytest.fixture(scope="module")
def kind():
    """(dag, settings) parsed as the kind profile."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MDP_PROFILE", "kind")
    try:
        from airflow_helpers import load_dagbag

        from mdp.core.settings import get_settings

        bag = load_dagbag()
        settings = get_settings()
    finally:
        mp.undo()
    assert bag.import_errors == {}, bag.import_errors
    assert settings.runner == "kubernetes"
    return bag.dags[DAG_ID], settings


def _context(dag, task_id: str) -> dict:
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id=task_id, try_number=1, map_index=-1)
    dag_run = SimpleNamespace(
        data_interval_start=HOUR, data_interval_end=HOUR + timedelta(hours=1), run_after=HOUR, logical_date=HOUR
    )
    return {"params": dict(dag.params), "dag_run": dag_run, "ti": ti, "task_instance": ti, "run_id": RUN_ID, "dag": dag}


def rendered(dag, task_id: str):
    """A copy of the task with its templates rendered for the 05:00 hourly run."""
    op = copy.deepcopy(dag.get_task(task_id))
    ctx = _context(dag, task_id)
    op.render_template_fields(ctx, jinja_env=dag.get_template_env())
    return op, ctx


def submitted_spark_application(dag, task_id: str) -> dict:
    """The body SparkKubernetesOperator would create: its own code path, the API calls mocked."""
    from airflow.providers.cncf.kubernetes.operators import (
        custom_object_launcher as col,
    )

    op, ctx = rendered(dag, task_id)
    op.name = op.create_job_name()
    captured = {}

    def fake_start(self, image=None, code_path=None, startup_timeout=600):
        captured["body"] = copy.deepcopy(self.body)
        return None, self.body

    with (
        mock.patch.object(type(op), "find_spark_job", return_value=None),
        mock.patch.object(type(op), "client", new=None),
        mock.patch.object(type(op), "custom_obj_api", new=None),
        mock.patch.object(col.CustomObjectLauncher, "start_spark_job", fake_start),
    ):
        op._setup_spark_configuration(ctx)
    return captured["body"]


def launched_pod(dag, task_id: str) -> dict:
    """The pod KubernetesPodOperator would create, as a manifest dict."""
    from kubernetes.client import ApiClient

    op, ctx = rendered(dag, task_id)
    with mock.patch.object(type(op), "hook", new=SimpleNamespace(is_in_cluster=True)):
        pod = op.build_pod_request_obj(ctx)
    return ApiClient().sanitize_for_serialization(pod)


@pytest.fixture(scope="module")
def crd_validate():
    try:
        from tests.deploy.k8s_schemas import (
            missing_reason,
            schemas_dir,
            validate_custom_resource,
        )
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"tests/deploy/k8s_schemas.py not importable: {exc}")
    if schemas_dir() is None:
        pytest.skip(missing_reason())
    return validate_custom_resource


# ---- the DAG in the kind profile ----------------------------------------------------------------
def test_kind_dag_uses_kubernetes_operators(kind):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
        SparkKubernetesOperator,
    )

    dag, settings = kind
    assert [t.task_id for t in dag.topological_sort()] == [s.name for s in STAGES]
    for stage in STAGES:
        op = dag.get_task(stage.name)
        if stage.kind == "spark":
            assert isinstance(op, SparkKubernetesOperator), stage.name
        else:
            assert isinstance(op, KubernetesPodOperator) and not isinstance(op, SparkKubernetesOperator), stage.name
        assert op.namespace == settings.kubernetes.namespace
        assert op.retries == 2


@pytest.mark.parametrize("stage", SPARK_STAGES, ids=lambda s: s.name)
def test_spark_application_validates_against_crd(kind, crd_validate, stage):
    import jsonschema

    from mdp.shell import k8s

    dag, settings = kind
    # What mdp/shell/k8s.py builds, exactly.
    crd_validate(k8s.spark_application(settings, stage, SINCE, UNTIL))
    # What the operator really submits after rendering and adding its own bits.
    body = submitted_spark_application(dag, stage.name)
    spec = body["spec"]
    assert spec["arguments"] == [stage.name, *RUN_ARGS]
    assert spec["image"] == settings.kubernetes.images["spark"]
    assert spec["mainApplicationFile"] == "local:///opt/mdp/mdp/shell/spark_main.py"
    assert (REPO / "mdp" / "shell" / "spark_main.py").is_file()
    assert spec["driver"]["serviceAccount"] == settings.kubernetes.spark_service_account
    assert body["metadata"]["namespace"] == settings.kubernetes.namespace
    # Upstream quirk: with reattach_on_restart the operator also writes spec.labels, a field the
    # v1beta2 CRD does not have (the API server prunes it; the same labels are on driver/executor,
    # which is where the operator looks for its pods). Everything else must be valid as is.
    with pytest.raises(jsonschema.ValidationError, match="labels"):
        crd_validate(body)
    assert spec.pop("labels")["task_id"] == stage.name
    assert spec["driver"]["labels"]["task_id"] == stage.name
    crd_validate(body)


def test_crd_check_is_strict(kind, crd_validate):
    import jsonschema

    from mdp.shell import k8s

    _, settings = kind
    body = k8s.spark_application(settings, SPARK_STAGES[0], SINCE, UNTIL)
    body["spec"]["driver"]["serviceAcount"] = "typo"
    with pytest.raises(jsonschema.ValidationError):
        crd_validate(body)


@pytest.mark.parametrize("stage", POD_STAGES, ids=lambda s: s.name)
def test_pod_names_image_account_and_secret_refs_from_profile(kind, stage):
    dag, settings = kind
    pod = launched_pod(dag, stage.name)
    k = settings.kubernetes
    assert pod["metadata"]["namespace"] == k.namespace
    assert pod["spec"]["serviceAccountName"] == k.service_account
    (c,) = pod["spec"]["containers"]
    assert c["image"] == k.images[stage.image_role] and c["image"]
    assert c["command"] == ["mdp"] and c["args"] == ["stage", stage.name, *RUN_ARGS]
    assert c["envFrom"] == [{"configMapRef": {"name": k.config_map}}]
    env = {e["name"]: e for e in c["env"]}
    assert env["MDP_PROFILE"]["value"] == "kind"
    assert env["MDP_S3_ENDPOINT"]["value"] == settings.s3_endpoint
    assert env["MDP_MLFLOW_TRACKING_URI"]["value"] == settings.mlflow_tracking_uri
    _assert_secrets_by_reference(settings, c["env"])
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def _assert_secrets_by_reference(settings, env: list[dict]) -> None:
    wanted = {(name, ref.name, key) for ref in settings.kubernetes.secrets.values() for name, key in ref.keys.items()}
    got = set()
    for e in env:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            got.add((e["name"], ref["name"], ref["key"]))
        else:
            assert not any(w in e["name"] for w in ("SECRET", "PASSWORD", "ACCESS_KEY")), f"literal credential {e}"
    assert got == wanted


@pytest.mark.parametrize("stage", SPARK_STAGES, ids=lambda s: s.name)
def test_spark_driver_and_executor_get_secrets_by_reference(kind, stage):
    _, settings = kind
    from mdp.shell import k8s

    spec = k8s.spark_application(settings, stage, SINCE, UNTIL)["spec"]
    for role in ("driver", "executor"):
        _assert_secrets_by_reference(settings, spec[role]["env"])
        assert spec[role]["envFrom"] == [{"configMapRef": {"name": settings.kubernetes.config_map}}]


def test_pod_passes_kubernetes_schema(kind):
    kv = pytest.importorskip("kubernetes_validate")
    dag, _ = kind
    for stage in POD_STAGES:
        pod = launched_pod(dag, stage.name)
        kv.validate(pod, "1.32.0", strict=True)


def test_gate_exit_code_fails_the_pod_task_without_retry(kind):
    """`mdp stage` exits 3 on a failed GX gate (2 bad config, 4 conservation, 6 a stage refused):
    no pointless retries; 5 (a dependency unreachable) and 1 (an unexpected error) are retried."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    dag, _ = kind
    op = dag.get_task("validate_silver")

    def remote(code):
        term = SimpleNamespace(exit_code=code)
        status = SimpleNamespace(name=op.base_container_name, state=SimpleNamespace(terminated=term))
        return SimpleNamespace(status=SimpleNamespace(container_statuses=[status]))

    boom = AirflowException(
        "Pod returned a failure.\nquality gate failed: Data Docs: s3://silver/_reports/gx/v/index.html"
    )
    with mock.patch.object(KubernetesPodOperator, "cleanup", side_effect=boom):
        for code in (2, 3, 4, 6):
            with pytest.raises(AirflowFailException, match="Data Docs"):
                op.cleanup(None, remote(code))
        for code in (1, 5):
            with pytest.raises(AirflowException) as info:
                op.cleanup(None, remote(code))
            assert not isinstance(info.value, AirflowFailException)


# ---- cross-check with the deployment files, where they exist -----------------------------------
CHART = REPO / "charts" / "mdp-platform"


@pytest.fixture(scope="module")
def chart_docs():
    if not (CHART / "Chart.yaml").is_file():
        pytest.skip("charts/mdp-platform not there yet")
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render({}, name="mdp", namespace="mdp", is_install=True)
    docs = []
    for path, body in out.items():
        if not path.endswith("NOTES.txt"):
            docs += [d for d in yaml.safe_load_all(body) if d]
    return docs


def _find(docs, kind_, name, namespace):
    return [
        d
        for d in docs
        if d.get("kind") == kind_ and d["metadata"].get("name") == name and d["metadata"].get("namespace") == namespace
    ]


def test_chart_has_the_accounts_and_secrets_the_pods_name(kind, chart_docs):
    _, settings = kind
    k = settings.kubernetes
    for sa in (k.service_account, k.spark_service_account):
        assert _find(chart_docs, "ServiceAccount", sa, k.namespace), f"ServiceAccount {sa} not in {k.namespace}"
    for ref in k.secrets.values():
        (secret,) = _find(chart_docs, "Secret", ref.name, k.namespace) or [None]
        assert secret, f"Secret {ref.name} not rendered in {k.namespace}"
        keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
        assert set(ref.keys.values()) <= keys, f"{ref.name} lacks {set(ref.keys.values()) - keys}"


def test_config_map_exists_in_the_jobs_namespace(kind):
    _, settings = kind
    base = REPO / "k8s" / "base" / "kustomization.yaml"
    if not base.is_file():
        pytest.skip("k8s/base not there yet")
    gens = yaml.safe_load(base.read_text()).get("configMapGenerator", [])
    names = {(g["name"], g.get("namespace")) for g in gens}
    assert (settings.kubernetes.config_map, settings.kubernetes.namespace) in names


def test_images_are_built_by_this_repo(kind):
    _, settings = kind
    for role in {s.image_role for s in STAGES} | {"airflow"}:
        image = settings.kubernetes.images[role]
        assert Path(REPO / "images" / role / "Dockerfile").is_file(), f"no images/{role}/Dockerfile for {image}"
