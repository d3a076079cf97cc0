"""Helpers for the transport tests (imported as a plain module: tests/transports is on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path


def subprocess_env(settings, **extra: str) -> dict[str, str]:
    """Environment for a child `python -m ...` that rebuilds the same settings from MDP_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDP_")}
    env.update({
        "MDP_PROFILE": settings.profile,
        "MDP_HOME": str(settings.home),
        "MDP_LAKE_ROOT": settings.lake_root,
        "MDP_SOURCE": settings.source,
        "MDP_KAFKA_TOPIC": settings.topic,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    })
    for key, var in (("kafka_bootstrap", "MDP_KAFKA_BOOTSTRAP"), ("s3_endpoint", "MDP_S3_ENDPOINT"),
                     ("postgres_dsn", "MDP_POSTGRES_DSN"), ("mlflow_tracking_uri", "MDP_MLFLOW_TRACKING_URI")):
        if getattr(settings, key):
            env[var] = str(getattr(settings, key))
    for secret, var in ((settings.s3_access_key, "AWS_ACCESS_KEY_ID"), (settings.s3_secret_key, "AWS_SECRET_ACCESS_KEY"),
                        (settings.postgres_password, "PGPASSWORD")):
        if secret:
            env[var] = secret.get_secret_value()
    env.update(extra)
    return env


def read_topic(bootstrap: str, topic: str, timeout_s: float = 20) -> list:
    """Every record of the topic, read by partition assignment (no group, no commit)."""
    import time

    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=64 << 20,
                             fetch_max_bytes=128 << 20)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out, deadline = [], time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()
