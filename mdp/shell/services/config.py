"""What the local servers are configured with: ports, dev credentials, the topic; saved as config.json."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Local-only development credentials. Not secrets: every server binds 127.0.0.1 only.
DEV_S3_ACCESS_KEY = "mdp-local-dev"
DEV_S3_SECRET_KEY = "mdp-local-dev-secret"
DEV_PG_PASSWORD = "mdp-local-dev"
PG_ROLE = "mdp"
PG_DATABASES = ("customers", "mlflow")
SERVICE_NAMES = ("postgres", "s3", "kafka", "mlflow")  # start order; stop is the reverse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Ports:
    postgres: int = 5432
    kafka: int = 9092
    s3: int = 8333
    mlflow: int = 5001
    # SeaweedFS opens several internal ports; fixed ones for `mdp services up`, free ones in tests.
    weed: dict[str, int] = field(
        default_factory=lambda: {
            "master.port": 19333,
            "master.port.grpc": 29333,
            "volume.port": 18080,
            "volume.port.grpc": 28080,
            "filer.port": 18888,
            "filer.port.grpc": 28888,
            "s3.port.grpc": 28333,
            "admin.port": 23646,
            "admin.port.grpc": 33646,
        }
    )

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), {k: free_port() for k in cls().weed})


@dataclass
class ServiceConfig:
    ports: Ports = field(default_factory=Ports)
    s3_access_key: str = DEV_S3_ACCESS_KEY
    s3_secret_key: str = DEV_S3_SECRET_KEY
    pg_password: str = DEV_PG_PASSWORD
    kafka_topic: str = "customers"
    kafka_partitions: int = 3
    pg_fsync: bool = True  # tests turn it off: throwaway data, faster CREATE/DROP DATABASE

    @classmethod
    def load(cls, path: Path) -> ServiceConfig:
        data = json.loads(path.read_text())
        ports = Ports(**data.pop("ports"))
        return cls(ports=ports, **data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)
