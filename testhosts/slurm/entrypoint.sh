#!/bin/sh
# Entry point of a Slurm test node: munge's key from /slurm/munge.key (the cluster's, mounted read-only), munged,
# then by $SLURM_ROLE slurmctld (ctld) or slurmd (compute), each daemonized, and last the sshd test host's own
# entry point (a supervisor that keeps sshd running: testhosts/image/entrypoint.sh). No systemd, no cgroups:
# slurm.conf (mounted at /etc/slurm) sets ProctrackType=proctrack/linuxproc and TaskPlugin=task/none.
set -eu

install -o munge -g munge -m 0400 /slurm/munge.key /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged
case "${SLURM_ROLE:-login}" in
    ctld) /usr/sbin/slurmctld ;;
    compute) /usr/sbin/slurmd ;;
    login) ;;
    *) echo "testhost-slurm: SLURM_ROLE must be ctld, compute or login, not ${SLURM_ROLE}" >&2; exit 2 ;;
esac
exec /usr/local/sbin/testhost-entrypoint "$@"
