"""Create the lake's buckets on an S3 server: `python -m mdp.shell.s3_buckets --endpoint URL [BUCKET ...]`.

The bucket job of docker-compose.yml (`s3-init`) and of the mdp-platform chart runs this from the
mdp-jobs image (boto3 is pinned there), so no S3 vendor's client is needed. The login comes from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. It waits, up to --timeout seconds, for the server to accept
the login, then creates the buckets that are missing. Idempotent: a second run creates nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from mdp.core.settings import LAYERS


def ensure_buckets(client: Any, buckets: Iterable[str]) -> list[str]:  # client: boto3 S3 (no types shipped)
    """Create the buckets that are missing; returns the ones created."""
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for b in buckets:
        if b not in existing:
            try:
                client.create_bucket(Bucket=b)
                created.append(b)
            except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                pass
    return created


def main(argv: list[str] | None = None) -> int:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True, help="S3 endpoint, e.g. http://s3:9000")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the server (default 300)")
    p.add_argument("buckets", nargs="*", default=list(LAYERS))
    a = p.parse_args(argv)
    client = boto3.client(
        "s3",
        endpoint_url=a.endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, connect_timeout=3, read_timeout=30, retries={"max_attempts": 2}),
    )
    deadline = time.monotonic() + a.timeout
    while True:
        try:
            created = ensure_buckets(client, a.buckets)
            break
        except (BotoCoreError, ClientError) as e:
            if time.monotonic() > deadline:
                print(
                    f"s3-buckets: {a.endpoint} did not accept the login within {a.timeout:.0f}s: {e}", file=sys.stderr
                )
                return 1
            print(f"s3-buckets: waiting for {a.endpoint} ({type(e).__name__})", file=sys.stderr, flush=True)
            time.sleep(3)
    print(f"s3-buckets: {', '.join(a.buckets)} present at {a.endpoint} (created: {', '.join(created) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
