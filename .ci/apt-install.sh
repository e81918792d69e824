#!/bin/sh
# Usage: .ci/apt-install.sh WHO PACKAGE...   install the Debian packages that are missing (as root), once.
# Shared by the setup scripts; WHO names the caller in its one line of output.
set -eu
who=$1
shift
if [ "$(id -u)" -ne 0 ]; then
    echo "$who: must run as root" >&2
    exit 1
fi
missing=""
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "$who: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # word splitting wanted
    apt-get install -y -qq $missing
fi
