"""Kafka producer: generated customer events -> topic `customers` (key = customer_id, acks=all).

Malformed messages go out on purpose, as many as the generator's dirty fraction says: the
message bytes are sent unchanged, and Silver quarantines what breaks the contract.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mdp.core.errors import ConfigError, StageError, Unavailable
from mdp.core.settings import Settings, connect_failure

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a few-MB message must pass end to end
SETTING = "kafka_bootstrap (MDP_KAFKA_BOOTSTRAP)"


def require_bootstrap(settings: Settings, what: str) -> str:
    if not settings.kafka_bootstrap:
        raise ConfigError(f"{SETTING}: required for {what}")
    return settings.kafka_bootstrap


def unreachable(bootstrap: str, exc: BaseException | str) -> Unavailable:
    """A Kafka connection failure: retryable, naming the setting and the endpoint."""
    return Unavailable(
        f"cannot reach Kafka at {bootstrap} (kafka_bootstrap, MDP_KAFKA_BOOTSTRAP): {connect_failure(exc)}"
    )


def bootstrap_timeout_ms(settings: Settings | None) -> int:
    """How long a client waits for the first broker: the platform's connect timeout."""
    return int(1000 * (settings.connect_timeout_s if settings else 10.0))


def producer_config(bootstrap: str, **overrides: Any) -> dict:
    conf = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 20,  # wait a little to fill batches
        "batch_size": 512 * 1024,  # bytes per partition batch
        "max_request_size": MAX_MESSAGE_BYTES,
        "retries": 5,
        "enable_idempotence": True,  # retries neither duplicate nor reorder a partition
        "request_timeout_ms": 30_000,
    }
    conf.update(overrides)
    return conf


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    from kafka import KafkaProducer
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    bootstrap = require_bootstrap(settings, "the Kafka producer")
    overrides.setdefault("bootstrap_timeout_ms", bootstrap_timeout_ms(settings))
    try:
        return KafkaProducer(**producer_config(bootstrap, **overrides))
    except (KafkaTimeoutError, KafkaConnectionError, OSError) as exc:
        raise unreachable(bootstrap, exc) from None


def ensure_topic(bootstrap: str | None, topic: str, partitions: int = 3, timeout_s: float = 15) -> bool:
    """Create the topic if it is missing (idempotent). Returns True when it was created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAlreadyExistsError

    if not bootstrap:
        raise ConfigError(f"{SETTING}: required to create the topic {topic!r}")
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaTimeoutError, KafkaConnectionError, OSError) as exc:
        raise unreachable(bootstrap, exc) from None
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics([NewTopic(topic, partitions, 1)])
        return True
    except TopicAlreadyExistsError:
        return False
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise unreachable(bootstrap, exc) from None
    finally:
        admin.close()


class _Outcome:
    __slots__ = ("ok", "failed", "first_error")

    def __init__(self):
        self.ok, self.failed, self.first_error = 0, 0, None

    def success(self, _meta: object) -> None:
        self.ok += 1

    def failure(self, exc: BaseException) -> None:
        self.failed += 1
        self.first_error = self.first_error or exc


def publish(
    producer: KafkaProducer, topic: str, messages: Iterable[tuple[bytes | None, bytes]], timeout_s: float = 60
) -> int:
    """Send (key, value) pairs and flush. Raises if any send failed after retries. Returns the count."""
    out = _Outcome()
    n = 0
    for key, value in messages:
        producer.send(topic, key=key, value=value).add_callback(out.success).add_errback(out.failure)
        n += 1
    try:
        producer.flush(timeout=timeout_s)
    except Exception as exc:
        out.first_error = out.first_error or exc
    if out.failed or out.ok != n:
        text = f"Kafka: {out.failed} of {n} sends to {topic!r} failed ({out.ok} acknowledged): {out.first_error!r}"
        # A retriable error (timeout, broker gone, leader moving) outlasted the retries: retry later.
        if getattr(out.first_error, "retriable", False) or isinstance(out.first_error, OSError):
            raise Unavailable(f"{text} ({SETTING})")
        raise StageError(text)
    return n


def produce_generated(
    settings: Settings, hours: list[datetime], events_per_hour: int | None = None, producer: KafkaProducer | None = None
) -> dict:
    """Generate each hour's events (seeded) and publish them; the dirty ones go out as they are."""
    from ingestion.generator import generate_hour

    n_events = events_per_hour or settings.events
    own = producer is None
    producer = producer or make_producer(settings)
    total, dirty, t0 = 0, 0, time.perf_counter()
    try:
        for hour in hours:
            events = generate_hour(settings.seed, hour, n_events, settings.dirty_fraction)
            dirty += sum(e.dirty is not None for e in events)
            total += publish(producer, settings.topic, ((e.customer_id.encode() or None, e.message) for e in events))
    finally:
        if own:
            producer.close(timeout=10)
    seconds = time.perf_counter() - t0
    return {
        "produced": total,
        "dirty": dirty,
        "seconds": round(seconds, 2),
        "events_per_s": round(total / max(seconds, 1e-9)),
    }


def current_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
