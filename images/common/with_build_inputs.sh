#!/bin/sh
# Runs a build step with the optional inputs copied to /tmp/build-inputs (images/build-inputs/README.md):
# a CA bundle for HTTPS, a wheelhouse for pip (PIP_OFFLINE=1: nothing else), S3A jars for fetch_s3a_jars.py.
# WHEELS_URL (build arg): a wheelhouse served over HTTP instead of one sent in the build context.
set -eu
inputs=/tmp/build-inputs
if [ -s "$inputs/ca-certificates.crt" ]; then
  export PIP_CERT="$inputs/ca-certificates.crt" SSL_CERT_FILE="$inputs/ca-certificates.crt"
fi
if [ -d "$inputs/wheels" ]; then
  export PIP_FIND_LINKS="$inputs/wheels"
fi
if [ -n "${WHEELS_URL:-}" ]; then
  host=${WHEELS_URL#*://}
  host=${host%%/*}
  PIP_FIND_LINKS="${PIP_FIND_LINKS:+$PIP_FIND_LINKS }$WHEELS_URL"
  export PIP_FIND_LINKS PIP_TRUSTED_HOST="${host%:*}"
fi
if [ "${PIP_OFFLINE:-0}" = "1" ]; then
  export PIP_NO_INDEX=1
fi
exec "$@"
