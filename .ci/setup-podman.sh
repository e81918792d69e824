#!/bin/sh
# Make rootful podman usable without per-command flags (CI and dev machines,
# Debian 12). Idempotent: installs only missing packages and rewrites
# /etc/containers/containers.conf only when it differs from .ci/containers.conf.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
conf_src="$here/containers.conf"
conf_dst=/etc/containers/containers.conf
# catatonit: `podman run --init` (the test hosts); not left to apt's Recommends.
packages="podman runc catatonit debootstrap openssh-client openssh-server rsync uidmap"

# shellcheck disable=SC2086  # the package list: several words
sh "$here/apt-install.sh" setup-podman.sh $packages

if ! cmp -s "$conf_src" "$conf_dst"; then
    echo "setup-podman.sh: installing $conf_dst"
    install -D -m 0644 "$conf_src" "$conf_dst"
fi

# Fail here, not in the first test, when the runtime does not work.
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >/dev/null
