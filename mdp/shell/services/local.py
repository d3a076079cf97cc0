"""LocalServices: the four servers together, started in order, stopped in reverse, checked as one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mdp.core.settings import Settings
from mdp.shell.services.config import SERVICE_NAMES, Ports
from mdp.shell.services.kafka import KafkaBroker
from mdp.shell.services.mlflow import MlflowServer
from mdp.shell.services.postgres import PostgresServer
from mdp.shell.services.s3 import S3Server


class LocalServices(PostgresServer, S3Server, KafkaBroker, MlflowServer):
    """Start, stop and check the local servers whose state lives under `root`."""

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalServices:
        return cls(settings.home / ".mdp" / "services")

    def settings_overrides(self) -> dict[str, Any]:
        """Keyword arguments for get_settings(...) that point the local profile at these servers."""
        return {
            "profile": "local",
            "lake_root": "s3://",
            "s3_endpoint": self.s3_endpoint,
            "kafka_bootstrap": self.kafka_bootstrap,
            "kafka_topic": self.config.kafka_topic,
            "mlflow_tracking_uri": self.mlflow_uri,
            "postgres_dsn": self.postgres_dsn(),
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "PGPASSWORD": self.config.pg_password,
        }

    def env(self) -> dict[str, str]:
        """Environment for clients: credentials, plus MDP_* endpoints when they differ from the profile."""
        env = {
            "MDP_PROFILE": "local",
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "PGPASSWORD": self.config.pg_password,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }
        defaults = Ports()
        if (self.ports.postgres, self.ports.kafka, self.ports.s3, self.ports.mlflow) != (
            defaults.postgres,
            defaults.kafka,
            defaults.s3,
            defaults.mlflow,
        ):
            env.update(
                MDP_S3_ENDPOINT=self.s3_endpoint,
                MDP_KAFKA_BOOTSTRAP=self.kafka_bootstrap,
                MDP_MLFLOW_TRACKING_URI=self.mlflow_uri,
                MDP_POSTGRES_DSN=self.postgres_dsn(),
            )
        return env

    def start(self, name: str) -> None:
        getattr(self, f"start_{name}")()

    def stop(self, name: str, timeout: float | None = None) -> None:
        if name == "postgres":
            self.stop_postgres()
            return
        # MLflow keeps no state of its own (Postgres and S3 do): it need not wait long.
        self._stop_process(name, timeout if timeout is not None else (5 if name == "mlflow" else 15))

    def healthy(self, name: str) -> bool:
        check: Callable[[], bool] = {
            "postgres": self.postgres_healthy,
            "kafka": self.kafka_healthy,
            "s3": self.s3_healthy,
            "mlflow": self.mlflow_healthy,
        }[name]
        try:
            return bool(check())
        except Exception:
            return False

    def up(self, names: tuple[str, ...] = SERVICE_NAMES) -> None:
        for name in SERVICE_NAMES:
            if name in names:
                self.start(name)
        # Bootstraps are idempotent: run them again so a restarted stack is complete.
        if "postgres" in names:
            self.bootstrap_postgres()
        if "s3" in names:
            self.bootstrap_s3()
        if "kafka" in names:
            self.bootstrap_kafka()

    def down(self, names: tuple[str, ...] = SERVICE_NAMES) -> None:
        for name in reversed(SERVICE_NAMES):
            if name in names:
                self.stop(name)

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "service": n,
                "port": self.port_of(n),
                "pid": self._pid(n) if self.running(n) else None,
                "running": self.running(n),
                "healthy": self.running(n) and self.healthy(n),
                "dir": str(self.root / n),
            }
            for n in SERVICE_NAMES
        ]
