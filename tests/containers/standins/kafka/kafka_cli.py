"""The Kafka CLI scripts this project calls, with kafka-python (stand-in for /opt/kafka/bin/*.sh)."""

import argparse
import sys

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=8000, client_id="kafka-cli-standin")


def topics(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kafka-topics.sh")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--create", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--describe", action="store_true")
    p.add_argument("--if-not-exists", action="store_true")
    p.add_argument("--topic")
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--replication-factor", type=int, default=1)
    a = p.parse_args(argv)
    client = admin(a.bootstrap_server)
    if a.create:
        try:
            client.create_topics([NewTopic(a.topic, a.partitions, a.replication_factor)])
            print(f"Created topic {a.topic}.")
        except TopicAlreadyExistsError:
            if not a.if_not_exists:
                print(f"Error while executing topic command : Topic '{a.topic}' already exists.", file=sys.stderr)
                return 1
        return 0
    names = sorted(client.list_topics())
    if a.list:
        print("\n".join(names))
        return 0
    if a.describe:
        for t in client.describe_topics([a.topic] if a.topic else names):
            print(f"Topic: {t['topic']}\tPartitionCount: {len(t['partitions'])}")
        return 0
    p.error("one of --create, --list, --describe is required")
    return 2


def api_versions(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kafka-broker-api-versions.sh")
    p.add_argument("--bootstrap-server", required=True)
    a = p.parse_args(argv)
    client = admin(a.bootstrap_server)
    for node in client.describe_cluster()["brokers"]:
        node_id = node.get("node_id", node.get("broker_id"))
        print(f"{node.get('host')}:{node.get('port')} (id: {node_id} rack: null) -> (ApiVersions supported)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit({"topics": topics, "api-versions": api_versions}[sys.argv[1]](sys.argv[2:]))
    except KafkaError as exc:
        print(f"Error: {exc!r}", file=sys.stderr)
        sys.exit(1)
