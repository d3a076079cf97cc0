"""Issue 7.5 / 11 - clear errors for bad configuration and outages, through the CLI in subprocesses.

Each case fails fast (within its bound) with a message that names the setting (and its variable)
and the endpoint, and prints no Python traceback. A bad setting exits 2 (never retried); an
endpoint where nothing answers exits 5 (an outage: retryable). Unreachable endpoints are 127.0.0.1
ports with nothing listening. The cases run concurrently (4 at a time): they are mostly waiting
on imports and connection attempts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.harness import cli_env, free_port, run_cli

pytestmark = pytest.mark.integration

P = free_port()  # nothing listens here (bound once, released; tests never start a server on it)
S3 = f"http://127.0.0.1:{P}"
NO_SECRETS = object()

# name: (args, env, exit code, fragments the output must contain, seconds allowed)
CASES = {
    "unknown_profile_env": (
        ["stage", "validate_silver"],
        {"MDP_PROFILE": "staging"},
        2,
        ["MDP_PROFILE", "unknown profile 'staging'", "embedded, local, compose, kind"],
        30,
    ),
    "unknown_profile_flag": (
        ["run", "--profile", "prod", "--stage", "validate_silver"],
        {},
        2,
        ["MDP_PROFILE", "unknown profile 'prod'"],
        30,
    ),
    "malformed_lake_uri": (
        ["stage", "validate_silver"],
        {"MDP_LAKE_ROOT": "ftp://lake/customers"},
        2,
        ["lake_root (MDP_LAKE_ROOT)", "unsupported scheme 'ftp'", "ftp://lake/customers"],
        30,
    ),
    "s3_lake_uri_with_path": (
        ["stage", "validate_silver"],
        {"MDP_LAKE_ROOT": "s3://lake/deep/path"},
        2,
        ["lake_root (MDP_LAKE_ROOT)", "s3://lake/deep/path"],
        30,
    ),
    "endpoint_without_host": (
        ["stage", "validate_silver"],
        {"MDP_S3_ENDPOINT": "http://"},
        2,
        ["s3_endpoint (MDP_S3_ENDPOINT)", "'http://' has no host"],
        30,
    ),
    "not_a_number": (["stage", "validate_silver"], {"MDP_EVENTS": "lots"}, 2, ["events (MDP_EVENTS)"], 30),
    "missing_settings_file": (
        ["stage", "validate_silver"],
        {"MDP_SETTINGS_FILE": "/nonexistent/mdp.yaml"},
        2,
        ["MDP_SETTINGS_FILE", "/nonexistent/mdp.yaml"],
        30,
    ),
    "bad_contract": (
        ["stage", "validate_silver"],
        {"MDP_CONTRACT": "/nonexistent/contract.yaml"},
        2,
        ["contract (MDP_CONTRACT)", "/nonexistent/contract.yaml", "customers"],
        30,
    ),
    "s3_unreachable": (
        ["stage", "validate_silver"],
        {"MDP_PROFILE": "local", "MDP_S3_ENDPOINT": S3},
        5,
        [f"s3_endpoint (MDP_S3_ENDPOINT) {S3}: connection refused"],
        45,
    ),
    "s3_missing_credentials": (
        ["stage", "validate_silver"],
        {"MDP_PROFILE": "local", "MDP_S3_ENDPOINT": S3, NO_SECRETS: ""},
        2,
        ["S3 credentials missing", S3, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        45,
    ),
    "mlflow_unreachable": (
        ["stage", "train_model"],
        {"MDP_MLFLOW_TRACKING_URI": S3},
        5,
        [f"mlflow_tracking_uri (MDP_MLFLOW_TRACKING_URI) {S3}: connection refused"],
        45,
    ),
    "kafka_unreachable": (
        ["stage", "land_bronze"],
        {"MDP_SOURCE": "kafka", "MDP_KAFKA_BOOTSTRAP": f"127.0.0.1:{P}"},
        5,
        [f"kafka_bootstrap (MDP_KAFKA_BOOTSTRAP) 127.0.0.1:{P}: connection refused"],
        45,
    ),
    # An outage, not a bad setting: exit 5 (retry later), still naming the setting and the endpoint.
    "postgres_unreachable": (
        ["postgres", "seed"],
        {"MDP_POSTGRES_DSN": f"postgresql://mdp@127.0.0.1:{P}/customers"},
        5,
        ["unavailable", "postgres_dsn", f"127.0.0.1:{P}", "connection refused"],
        45,
    ),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    home = tmp_path_factory.mktemp("config")

    def one(name):
        args, env, *_ = CASES[name]
        env = dict(env)
        with_secrets = env.pop(NO_SECRETS, None) is None
        return name, run_cli(args, cli_env(home, secrets_in_env=with_secrets, **env), timeout=180)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_configuration_fails_fast_and_clearly(results, name, record_property):
    _, _, code, fragments, bound = CASES[name]
    r = results[name]
    record_property("seconds", round(r.seconds, 1))
    record_property("message", r.stderr.strip()[-300:])
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    assert r.returncode == code, f"exit {r.returncode}: {r.text[-1500:]}"
    for fragment in fragments:
        assert fragment in r.text, f"{fragment!r} not in: {r.text[-1500:]}"
    assert r.seconds < bound, f"took {r.seconds:.1f}s (bound {bound}s)"
