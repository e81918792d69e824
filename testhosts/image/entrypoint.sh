#!/bin/sh
# PID 1 of a test host: host key on first start, client key from the
# environment ($AUTHORIZED_KEY, one or more lines), then sshd in the
# foreground (logs go to `podman logs`).
set -eu

hostkey=/etc/ssh/ssh_host_ed25519_key
if [ ! -s "$hostkey" ]; then
    # ed25519 only: an RSA key would cost ~0.5 s of CPU per host.
    ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f "$hostkey"
fi

home=/home/trainer
if [ -n "${AUTHORIZED_KEY:-}" ]; then
    install -d -m 0700 -o trainer -g trainer "$home/.ssh"
    printf '%s\n' "$AUTHORIZED_KEY" > "$home/.ssh/authorized_keys"
    chown trainer:trainer "$home/.ssh/authorized_keys"
    chmod 0600 "$home/.ssh/authorized_keys"
elif [ ! -s "$home/.ssh/authorized_keys" ]; then
    echo "testhost: AUTHORIZED_KEY is empty: nobody can log in" >&2
fi

# `podman run IMAGE CMD...` runs CMD instead of sshd; options go to sshd.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi
install -d -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e "$@"
