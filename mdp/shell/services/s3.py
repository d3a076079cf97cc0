"""The S3 server: SeaweedFS (`weed mini`), one identity with the dev keys, and the layer buckets."""

from __future__ import annotations

import json
from typing import Any

from mdp.core.settings import LAYERS
from mdp.shell.s3_buckets import ensure_buckets
from mdp.shell.services.binaries import find_binary
from mdp.shell.services.host import ServiceHost, port_open, wait_until


class S3Server(ServiceHost):
    def start_s3(self) -> None:
        name, port = "s3", self.ports.s3
        if self.running(name):
            return
        binary = find_binary(name)
        for p in (port, *self.ports.weed.values()):
            self._check_port_free(name, p)
        d = self.dir(name)
        (d / "data").mkdir(exist_ok=True)
        s3_json = d / "s3.json"
        s3_json.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "mdp",
                            "credentials": [
                                {"accessKey": self.config.s3_access_key, "secretKey": self.config.s3_secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        s3_json.chmod(0o600)
        args = [
            binary,
            "mini",
            f"-dir={d / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={s3_json}",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.port={port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *[f"-{k}={v}" for k, v in self.ports.weed.items()],
        ]
        self._spawn(name, args)
        wait_until(self.s3_healthy, "s3 (SeaweedFS)", 60, self._alive_fn(name), d / "log")
        self.bootstrap_s3()

    def s3_client(self, secret_key: str | None = None) -> Any:  # a boto3 S3 client (boto3 ships no types)
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.config.s3_access_key,
            aws_secret_access_key=secret_key or self.config.s3_secret_key,
            config=Config(
                s3={"addressing_style": "path"}, connect_timeout=3, read_timeout=30, retries={"max_attempts": 2}
            ),
        )

    def s3_healthy(self) -> bool:
        if not port_open(self.ports.s3):
            return False
        self.s3_client().list_buckets()
        return True

    def bootstrap_s3(self, buckets: tuple[str, ...] = LAYERS) -> list[str]:
        """Create the layer buckets that are missing. Idempotent; returns the ones it created."""
        return ensure_buckets(self.s3_client(), buckets)
