#!/bin/sh
exec /opt/standin/bin/python /etc/kafka/docker/kafka_cli.py api-versions "$@"
