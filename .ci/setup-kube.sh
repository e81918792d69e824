#!/bin/sh
# What the single-node test cluster (testhosts/kube) needs from Debian, beside podman (.ci/setup-podman.sh):
# CNI plugins (bridge, host-local, loopback in /usr/lib/cni), iptables and conntrack for kube-proxy,
# openssl for the certificates, gcc and libc6-dev for the static pause binary, iproute2 for the devices.
# Go (1.26+) comes with the machine; the cluster's sources come from the Go module proxy. Idempotent.
set -eu

packages="containernetworking-plugins iptables conntrack openssl gcc libc6-dev iproute2 util-linux"

# shellcheck disable=SC2086  # the package list: several words
sh "$(dirname "$0")/apt-install.sh" setup-kube.sh $packages
PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "setup-kube.sh: Go 1.26+ is needed (not found on PATH or in /usr/local/go/bin)" >&2; exit 1; }
