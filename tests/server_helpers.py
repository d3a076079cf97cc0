"""Helpers for the tests on the real local servers of tests/servers.py."""

from __future__ import annotations

import os
from pathlib import Path


def subprocess_env(settings, **extra: str) -> dict[str, str]:
    """Environment for a child `python -m ...` that rebuilds the same settings from MDP_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDP_")}
    env.update(
        {
            "MDP_PROFILE": settings.profile,
            "MDP_HOME": str(settings.home),
            "MDP_LAKE_ROOT": settings.lake_root,
            "MDP_SOURCE": settings.source,
            "MDP_KAFKA_TOPIC": settings.topic,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
    )
    for key, var in (
        ("kafka_bootstrap", "MDP_KAFKA_BOOTSTRAP"),
        ("s3_endpoint", "MDP_S3_ENDPOINT"),
        ("postgres_dsn", "MDP_POSTGRES_DSN"),
        ("mlflow_tracking_uri", "MDP_MLFLOW_TRACKING_URI"),
    ):
        if getattr(settings, key):
            env[var] = str(getattr(settings, key))
    for secret, var in (
        (settings.s3_access_key, "AWS_ACCESS_KEY_ID"),
        (settings.s3_secret_key, "AWS_SECRET_ACCESS_KEY"),
        (settings.postgres_password, "PGPASSWORD"),
    ):
        if secret:
            env[var] = secret.get_secret_value()
    env.update(extra)
    return env


def read_topic(bootstrap: str, topic: str, timeout_s: float = 20) -> list:
    """Every record of the topic, read by partition assignment (no group, no commit).

    Read up to each partition's high watermark from the fetches: tansu 0.6 answers ListOffsets
    (latest) with the last batch's base offset + 1, short of the end."""
    import time

    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 << 20,
        fetch_max_bytes=128 << 20,
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        listed = consumer.end_offsets(parts)

        def behind() -> bool:
            return any(
                consumer.highwater(tp) is None or consumer.position(tp) < max(listed[tp], consumer.highwater(tp))
                for tp in parts
            )

        out, deadline = [], time.monotonic() + timeout_s
        while behind() and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, topic: str, group: str) -> dict[int, int | None]:
    """The group's committed offset per partition (None: nothing committed), read without joining."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {
            p: consumer.committed(TopicPartition(topic, p)) for p in sorted(consumer.partitions_for_topic(topic) or [])
        }
    finally:
        consumer.close(autocommit=False)


def bronze_offsets(table) -> dict[int, list[int]]:
    """Bronze rows by Kafka partition: the sorted offsets, duplicates kept (so a double shows)."""
    out: dict[int, list[int]] = {}
    for p, o in zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=False):
        out.setdefault(p, []).append(o)
    return {p: sorted(v) for p, v in sorted(out.items())}


class SteadyProducer:
    """A producer thread that never pauses: small sends every 10 ms until stopped (about 5,000/s)."""

    def __init__(self, settings, per_tick: int = 50):
        import threading

        self.settings, self.per_tick = settings, per_tick
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)

    def _run(self) -> None:
        import time

        from ingestion.producer import make_producer

        producer = make_producer(self.settings, linger_ms=5)
        try:
            i = 0
            while not self._stop.is_set():
                for _ in range(self.per_tick):
                    producer.send(self.settings.topic, key=f"C{i % 1000:07d}".encode(), value=f'{{"i": {i}}}'.encode())
                    i += 1
                self.sent = i
                time.sleep(0.01)
            producer.flush(timeout=30)
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close(timeout=10)

    def start(self, at_least: int = 0, timeout_s: float = 60) -> SteadyProducer:
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while self.sent < at_least and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error:
            raise self.error
        return self.sent


def contract_violations(message: dict, contract) -> list[str]:
    """What in one flat message breaks the contract's column rules (normalisers applied first), or []."""
    import re
    from datetime import date, datetime

    out = []
    if set(message) != set(contract.names):
        out.append(f"fields {sorted(set(message) ^ set(contract.names))} differ from the contract")
    for c in contract.columns:
        v = message.get(c.name)
        if v is None:
            if not c.nullable:
                out.append(f"missing:{c.name}")
            continue
        if c.type == "string" and isinstance(v, str):
            for n in c.normalise:
                v = {"trim": str.strip, "lower": str.lower, "upper": str.upper}[n](v)
        ok_type = {
            "string": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "double": isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": isinstance(v, bool),
        }
        if c.type in ok_type and not ok_type[c.type]:
            out.append(f"bad_type:{c.name}")
            continue
        if c.type in ("date", "timestamp"):
            try:
                v = (
                    date.fromisoformat(v)
                    if c.type == "date"
                    else datetime.fromisoformat(v.replace("Z", "+00:00")).date()
                )
            except (TypeError, ValueError):
                out.append(f"bad_type:{c.name}")
                continue
        if c.regex and not re.fullmatch(c.regex, v):
            out.append(f"bad_format:{c.name}")
        if c.allowed and v not in c.allowed:
            out.append(f"bad_value:{c.name}")
        lo, hi = c.min, c.max
        if c.type in ("date", "timestamp"):
            lo = lo if lo is None or isinstance(lo, date) else None
            hi = hi if hi is None or isinstance(hi, date) else None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            out.append(f"out_of_range:{c.name}")
    return out
