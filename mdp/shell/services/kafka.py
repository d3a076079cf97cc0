"""The Kafka broker: tansu, speaking the Kafka protocol, with the pipeline's topic."""

from __future__ import annotations

from mdp.shell.services.binaries import find_binary
from mdp.shell.services.host import ServiceHost, port_open, wait_until


class KafkaBroker(ServiceHost):
    def start_kafka(self) -> None:
        name, port = "kafka", self.ports.kafka
        if self.running(name):
            return
        binary = find_binary(name)
        self._check_port_free(name, port)
        url = f"tcp://127.0.0.1:{port}"
        # memory:// storage: topics live as long as the broker (see docs/LOCAL_PROFILE.md).
        self._spawn(
            name,
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
        )
        wait_until(self.kafka_healthy, "kafka (tansu)", 15, self._alive_fn(name), self.root / name / "log")
        self.bootstrap_kafka()

    def kafka_healthy(self) -> bool:
        return port_open(self.ports.kafka)

    def bootstrap_kafka(self, topic: str | None = None, partitions: int | None = None) -> None:
        from ingestion.producer import ensure_topic

        ensure_topic(self.kafka_bootstrap, topic or self.config.kafka_topic, partitions or self.config.kafka_partitions)
