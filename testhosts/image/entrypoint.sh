#!/bin/sh
# Entry point of a test host: host key on first start, client key from the
# environment ($AUTHORIZED_KEY, one or more lines), then a supervisor loop that
# keeps `sshd -D -e` running (logs go to `podman logs`) unless the pause file
# exists. hosts.py runs containers with `podman run --init` (catatonit is PID 1
# and reaps orphans, e.g. jobs started with setsid over ssh), so this script is
# a child of PID 1 and sshd can go away and come back without the container.
#
# Drop every SSH connection (HostSet.drop_ssh):   touch /run/sshd.paused;
#                                                 pkill -KILL -x sshd
# Bring sshd back (HostSet.resume_ssh):           rm /run/sshd.paused;
#                                                 kill -USR1 "$(cat /run/testhost-supervisor.pid)"
# (USR1 only wakes the loop at once; without it sshd is back within 1 s.)
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

pause=/run/sshd.paused
pidfile=/run/testhost-supervisor.pid
install -d -m 0755 /run/sshd
# /run is not a tmpfs here: a pause left by `podman stop` must not survive `podman start`.
rm -f "$pause"
# A broken config fails the container at once instead of a restart loop.
/usr/sbin/sshd -t "$@"
echo $$ > "$pidfile"

child=
stop() {
    trap - TERM INT HUP
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi
    exit 0
}
trap stop TERM INT HUP
trap : USR1
# Until $child has exited: a trapped signal (USR1) interrupts `wait` early.
wait_child() {
    rc=0
    while kill -0 "$child" 2>/dev/null; do
        wait "$child" && rc=0 || rc=$?
    done
    child=
}

while :; do
    if [ -e "$pause" ]; then
        sleep 1 &
        child=$!
        wait "$child" || true  # USR1 from resume_ssh ends this early
        kill "$child" 2>/dev/null || true
        wait_child
        continue
    fi
    /usr/sbin/sshd -D -e "$@" &
    child=$!
    wait_child
    if [ ! -e "$pause" ]; then
        echo "testhost: sshd exited (status $rc), restarting" >&2
        sleep 0.5  # no busy loop if it keeps failing
    fi
done
