#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine with Python 3.11 and Java 17.
#   scripts/setup.sh          the venv with the pinned stack (enough for `mdp run`)
#   scripts/setup.sh --test   also the S3A jars and the system packages the tests use, and a Docker
#                             engine for tests/containers (started here when none runs and we are root)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "setup: Python 3.11 is required (found $("$PY" --version 2>&1))" >&2; exit 2; }
command -v java >/dev/null || { echo "setup: Java 17 is required for Spark (apt-get install openjdk-17-jre-headless)" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.mdp-installed-$(sha256sum requirements.lock pyproject.toml scripts/setup.sh | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing the pinned stack into .venv (1-3 minutes on a cold cache)"
  .venv/bin/python -m pip install -q --upgrade pip uv
  # Bytecode compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on the machines CI uses), every
  # process would otherwise compile its imports from source, about 20 s per `mdp` command.
  .venv/bin/uv pip install -q -p .venv/bin/python --compile-bytecode -r requirements.lock
  .venv/bin/uv pip install -q -p .venv/bin/python --no-deps -e .
  rm -f .venv/.mdp-installed-* && touch "$stamp"
fi

if [ "${1:-}" = "--test" ]; then
  # hadoop-aws + AWS SDK jars for Spark's s3a:// (Maven is not reachable here; this sdist ships them).
  if ! .venv/bin/python -c 'import sagemaker_pyspark' 2>/dev/null; then
    echo "setup: installing S3A jars (sagemaker-pyspark, about 1 minute)"
    .venv/bin/uv pip install -q -p .venv/bin/python --no-deps --compile-bytecode sagemaker-pyspark==1.4.5
  fi
  need=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v chromium >/dev/null || need+=(chromium chromium-driver)
  # tests/containers: Debian's Docker engine, and debootstrap for the stand-in base images.
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: apt-get install ${need[*]}"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  scripts/docker-engine.sh
fi
