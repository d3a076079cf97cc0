"""Local services for the `local` profile: PostgreSQL, tansu (Kafka protocol), SeaweedFS (S3) and
the MLflow server, all on 127.0.0.1, each with its data, log and pid in .mdp/services/<name>/.

    mdp services up        start what is not running, wait for health, bootstrap buckets/databases/topic
    mdp services status    one line per service: running? healthy? port, pid
    mdp services down      stop everything this folder started
    mdp services env       the shell exports for the dev credentials (eval "$(mdp services env)")

The credentials are fixed, local-only development values written to .mdp/services/config.json.
They protect nothing (every server binds 127.0.0.1 only) and must never be used elsewhere.
The same class starts servers on free ports in a temporary folder for the integration tests.

    config.py     ports, dev credentials, config.json      binaries.py   where each executable comes from
    host.py       a server's folder, pid, start and stop   local.py      LocalServices: the four together
    postgres.py   kafka.py   s3.py   mlflow.py: one server each          cli.py        `mdp services ...`
"""

from mdp.shell.services.binaries import find_binary
from mdp.shell.services.config import (
    DEV_PG_PASSWORD,
    DEV_S3_ACCESS_KEY,
    DEV_S3_SECRET_KEY,
    PG_DATABASES,
    PG_ROLE,
    SERVICE_NAMES,
    Ports,
    ServiceConfig,
    free_port,
)
from mdp.shell.services.host import ServiceError, port_open
from mdp.shell.services.local import LocalServices

__all__ = [
    "DEV_PG_PASSWORD",
    "DEV_S3_ACCESS_KEY",
    "DEV_S3_SECRET_KEY",
    "PG_DATABASES",
    "PG_ROLE",
    "SERVICE_NAMES",
    "LocalServices",
    "Ports",
    "ServiceConfig",
    "ServiceError",
    "find_binary",
    "free_port",
    "port_open",
]
