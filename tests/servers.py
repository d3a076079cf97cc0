"""Real servers for the tests of the transports: PostgreSQL, tansu (Kafka), SeaweedFS (S3), MLflow server.

A plugin (tests/conftest.py loads it), as tests in several folders use the servers; those files
are listed in `_SERVERS` there, so that one worker runs them all and starts the servers once.

One stack per test session, on free ports, in a temporary folder that is removed at the end.
Tests isolate themselves with their own topic, database, bucket and consumer group.
A test whose server binary is missing is skipped with the reason (install hint) in the message.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from mdp.shell.services import LocalServices, Ports, ServiceConfig, ServiceError, find_binary


def _need(*names: str) -> None:
    for name in names:
        try:
            find_binary(name)
        except ServiceError as exc:
            pytest.skip(str(exc))


@pytest.fixture(scope="session")
def stack(request):
    root = Path(tempfile.mkdtemp(prefix="mdp-transports-"))
    root.chmod(0o755)  # the postgres user (initdb as root drops to it) must reach its folder
    # HOME/.mdp/services, as `mdp services ... --home HOME` expects.
    svc = LocalServices(root / ".mdp" / "services", ServiceConfig(ports=Ports.free(), pg_fsync=False))
    try:
        _warm_mlflow(svc, request.session.items)
        yield svc
    finally:
        svc.down()
        shutil.rmtree(root, ignore_errors=True)


def _start(stack: LocalServices, name: str) -> LocalServices:
    _need(name)
    if not stack.running(name):
        stack.start(name)
    return stack


def _warm_mlflow(stack: LocalServices, items) -> None:
    """The MLflow server needs 20-50 s to come up: start it first, without waiting, when a test needs it."""
    if not any("mlflow_server" in getattr(item, "fixturenames", ()) for item in items):
        return
    try:
        for name in ("postgres", "s3", "mlflow"):
            find_binary(name)
    except ServiceError:
        return  # the tests that need it skip with the reason
    _start(stack, "postgres")
    _start(stack, "s3")
    stack.start_mlflow(wait=False)


@pytest.fixture(scope="session")
def postgres(stack):
    return _start(stack, "postgres")


@pytest.fixture(scope="session")
def kafka(stack):
    return _start(stack, "kafka")


@pytest.fixture(scope="session")
def s3(stack):
    return _start(stack, "s3")


@pytest.fixture(scope="session")
def mlflow_server(postgres, s3):
    _need("mlflow")
    s3.start_mlflow(wait=True)
    return s3


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic(kafka, uid) -> str:
    from ingestion.producer import ensure_topic

    name = f"customers-{uid}"
    ensure_topic(kafka.kafka_bootstrap, name, partitions=3)
    return name


@pytest.fixture
def pg_database(postgres, uid) -> str:
    """A fresh database owned by `mdp`; returns its DSN."""
    name = f"t_{uid}"
    postgres.create_database(name)
    yield postgres.postgres_dsn(name)
    with postgres._pg_super() as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def bucket_lake(s3, uid) -> str:
    """A lake root of its own: s3://<bucket>, layers as prefixes in it."""
    name = f"lake-{uid}"
    s3.s3_client().create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def local_settings(stack, tmp_path, monkeypatch):
    """Settings of the `local` profile pointing at this session's servers (override by keyword)."""
    from mdp.core.settings import get_settings

    monkeypatch.delenv("MDP_PROFILE", raising=False)

    def _make(**overrides):
        values = {**stack.settings_overrides(), "home": tmp_path, **overrides}
        return get_settings(**values)

    return _make
