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
    [
        ("lake_root", "ftp://host/lake", "MDP_LAKE_ROOT"),
        ("events", "-5", "MDP_EVENTS"),
        ("mlflow_tracking_uri", "http://", "MDP_MLFLOW_TRACKING_URI"),
        ("kubernetes.spark_executors", "-1", "MDP_KUBERNETES__SPARK_EXECUTORS"),
    ],
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
    for word in ("password:", "secret_key:", "mdp-dev-s3-password"):
        assert word not in text


# ---- fast checks of the preflight and masking helpers (`make mutation` runs these) ----------------
def test_check_reachable_passes_a_listening_endpoint_and_names_a_dead_one():
    import socket

    from mdp.core.errors import Unavailable
    from mdp.core.settings import check_reachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_reachable("s3_endpoint", f"http://127.0.0.1:{port}", 2)  # answers: no error
        check_reachable("kafka_bootstrap", f"127.0.0.1:{port}", 2)  # host:port without a scheme
    with pytest.raises(Unavailable) as err:  # closed now: nothing listens there
        check_reachable("mlflow_tracking_uri", f"http://127.0.0.1:{port}/x", 2)
    assert (
        str(err.value) == f"mlflow_tracking_uri (MDP_MLFLOW_TRACKING_URI) http://127.0.0.1:{port}/x: connection refused"
    )
    check_reachable("mlflow_tracking_uri", "sqlite:///mlflow.db", 2)  # not a network endpoint: nothing to check
    check_reachable("s3_endpoint", "", 2)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        ("timed out", "timed out (timed out)"),
        ("Read timeout on endpoint", "timed out (Read timeout on endpoint)"),
        ("[Errno -2] Name or service not known", "unknown host ([Errno -2] Name or service not known)"),
        ("getaddrinfo failed", "unknown host (getaddrinfo failed)"),
        ("nodename nor servname provided", "unknown host (nodename nor servname provided)"),
        ("boom", "cannot connect (boom)"),
    ],
)
def test_connect_failures_are_named_shortly(error, reason):
    from mdp.core.settings import connect_failure

    assert connect_failure(error) == reason


def test_secret_mask_hides_configured_values_and_url_passwords_in_log_records(monkeypatch):
    import logging

    from mdp.core.settings import SecretMask, redact

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("PGPASSWORD", "abc")  # too short to mask safely: left alone
    assert redact("key s3cr3t-value at postgresql://mdp:pw0rd@db:5432/x") == "key *** at postgresql://mdp:***@db:5432/x"
    assert redact("abc") == "abc"
    mask = SecretMask(["longer-secret", "longer-secret-2"])
    assert mask.redact("longer-secret-2") == "***"  # the longest value first, no '***-2' left over
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "Authorization: %s", ("longer-secret",), None)
    assert mask.filter(record) is True and record.getMessage() == "Authorization: ***"
    plain = logging.LogRecord("x", logging.DEBUG, __file__, 1, "nothing %s", ("here",), None)
    assert mask.filter(plain) is True and plain.args == ("here",)  # untouched


def test_redacted_settings_hold_no_credentials(monkeypatch):
    from mdp.core.settings import get_settings

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    s = get_settings(profile="local")
    shown = s.redacted()
    assert "s3cr3t-value" not in str(shown) and "AKIAEXAMPLE" not in str(shown)
    assert shown["profile"] == "local" and shown["s3_endpoint"] == s.s3_endpoint
    assert set(s.secret_values()) >= {"s3cr3t-value", "AKIAEXAMPLE"}


def test_layer_uris(make_settings):
    from mdp.core.errors import ConfigError

    s = make_settings()
    assert s.layer_uri("silver") == s.lake_base.rstrip("/") + "/silver"
    assert make_settings(lake_root="s3://").layer_uri("gold") == "s3://gold"
    with pytest.raises(ConfigError, match="unknown lake layer 'platinum'"):
        s.layer_uri("platinum")
