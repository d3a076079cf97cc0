import pytest

from mdp.core.settings import ConfigError, get_settings, load_profiles

pytestmark = pytest.mark.unit


def test_default_profile_is_embedded_and_local(make_settings, tmp_path):
    s = make_settings()
    assert s.profile == "embedded"
    assert s.layer_uri("bronze") == (tmp_path / ".mdp/lake/bronze").resolve().as_uri()
    assert s.mlflow_uri == f"sqlite:///{(tmp_path / '.mdp/mlflow.db').resolve()}"
    assert s.spark_master.startswith("local")


def test_profiles_differ_only_in_data(monkeypatch):
    monkeypatch.setenv("MDP_PROFILE", "kind")
    s = get_settings()
    assert s.layer_uri("silver") == "s3://silver"
    assert s.runner == "kubernetes"
    assert s.kubernetes.images["spark"] == load_profiles()["kind"]["kubernetes"]["images"]["spark"]


def test_env_overrides_profile(monkeypatch):
    monkeypatch.setenv("MDP_PROFILE", "local")
    monkeypatch.setenv("MDP_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    assert get_settings().kafka_bootstrap == "127.0.0.1:19092"


def test_unknown_profile_names_the_key(monkeypatch):
    monkeypatch.setenv("MDP_PROFILE", "prod")
    with pytest.raises(ConfigError, match=r"MDP_PROFILE: unknown profile 'prod'"):
        get_settings()


@pytest.mark.parametrize(
    ("key", "value", "env"),
    [("lake_root", "ftp://host/lake", "MDP_LAKE_ROOT"), ("events", "-5", "MDP_EVENTS"), ("mlflow_tracking_uri", "http://", "MDP_MLFLOW_TRACKING_URI")],
)
def test_bad_values_name_the_key(monkeypatch, key, value, env):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=rf"{key} \({env}\)"):
        get_settings()


def test_settings_file_unknown_key_is_named(monkeypatch, tmp_path):
    f = tmp_path / "mdp.yaml"
    f.write_text("profile: embedded\nlake_rot: /tmp/x\n")
    monkeypatch.setenv("MDP_SETTINGS_FILE", str(f))
    with pytest.raises(ConfigError, match="lake_rot"):
        get_settings()


def test_credentials_come_from_standard_env_and_are_redacted(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    s = get_settings()
    assert s.s3_secret_key.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(s) and "s3cr3t-value" not in str(s.redacted())
    assert s.secret_values() == ["s3cr3t-value"]


def test_no_credentials_in_profiles():
    text = str(load_profiles()).lower()
    for word in ("password:", "secret_key:", "minio12345"):
        assert word not in text
