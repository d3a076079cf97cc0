"""The MLflow tracking server: its store in Postgres (database mlflow), its artifacts in S3 (bucket mlflow)."""

from __future__ import annotations

import urllib.request

from mdp.shell.services.binaries import find_binary
from mdp.shell.services.config import PG_ROLE
from mdp.shell.services.host import ServiceError, ServiceHost, wait_until


class MlflowServer(ServiceHost):
    def mlflow_env(self) -> dict[str, str]:
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "PGPASSWORD": self.config.pg_password,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            # No MLflow server jobs (GenAI judges, trace rollups) here: they start three huey worker
            # pools that cost CPU and start-up time on a 2-core machine.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def start_mlflow(self, wait: bool = True) -> None:
        """Start the server; with wait=False return at once and call wait_mlflow() later (it takes 20-50 s)."""
        name, port = "mlflow", self.ports.mlflow
        if self.running(name):
            if wait:
                self.wait_mlflow()
            return
        binary = find_binary(name)
        self._check_port_free(name, port)
        for dep in ("postgres", "s3"):
            if not self.running(dep):
                raise ServiceError(f"mlflow: needs {dep} running first (mdp services up)")
        backend = f"postgresql+psycopg://{PG_ROLE}@127.0.0.1:{self.ports.postgres}/mlflow"
        self._spawn(
            name,
            [
                binary,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                "s3://mlflow",
            ],
            env=self.mlflow_env(),
        )
        if wait:
            self.wait_mlflow()

    def wait_mlflow(self, timeout: float = 180) -> None:
        wait_until(
            self.mlflow_healthy, "mlflow server", timeout, self._alive_fn("mlflow"), self.root / "mlflow" / "log"
        )

    def mlflow_healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.mlflow_uri}/health", timeout=2) as resp:
            ok: bool = resp.status == 200
            return ok
