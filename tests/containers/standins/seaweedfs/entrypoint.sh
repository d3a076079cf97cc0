#!/bin/sh
# Stand-in entrypoint for chrislusf/seaweedfs (written for this project, see the Dockerfile's first line).
set -eu
if [ "$(id -u)" = 0 ]; then
  # As upstream: /data belongs to the unprivileged seaweed user, which runs the server.
  [ "$(stat -c %u /data)" = "$(id -u seaweed)" ] || chown -R seaweed:seaweed /data
  exec gosu seaweed "$0" "$@"
fi
case "${1:-}" in
  mini)
    shift
    dir=-dir=/data
    for a in "$@"; do
      case "$a" in -dir|-dir=*|--dir|--dir=*) dir= ;; esac
    done
    # shellcheck disable=SC2086  # $dir is one word or none
    exec weed -logtostderr=true mini $dir "$@" ;;
  *)
    exec weed "$@" ;;
esac
