#!/bin/sh
# Entry point of the docker test host (target testhost-docker): dockerd in the background (vfs storage; no
# iptables, no bridge: container jobs use the host network), then the usual test host (sshd supervisor).
set -eu
dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
    --log-level=warn >/var/log/dockerd.log 2>&1 &
exec /usr/local/sbin/testhost-entrypoint "$@"
