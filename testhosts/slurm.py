"""A real Slurm cluster for the tests: podman containers of Debian's Slurm 22.05, reached over SSH.

Nodes (one image, ``testhosts/slurm``, built by ``build-image.sh``; ``$SLURM_ROLE`` picks the daemons):

- ``ctl``: slurmctld;
- ``n1`` .. ``nN``: slurmd, the compute nodes (partition ``debug``, the default; 2 CPUs each);
- ``login1``, ``login2``: no daemon, the Slurm client commands and sshd: the hosts of the inventory.

Every node mounts the same directory at ``/home/trainer`` (the file system login and compute nodes share, as
on an HPC site), the cluster's munge key and ``slurm.conf`` (a directory mount: an edit in place reaches every
node). No systemd, no cgroups (``proctrack/linuxproc``, ``task/none``), accounting off (no slurmdbd, so no
``sacct``), as at many small sites. ``KillWait`` is 30 s: a stop that honours ``--grace`` proves it does not
wait for Slurm's own kill. Partition ``urgent`` (the same nodes, a higher tier) preempts ``debug``'s jobs
(cancelled after a GraceTime of 5 s); a node silent for 20 s is DOWN and its jobs end as NODE_FAIL. The
nodes share one podman network of their own, where each is known by its name.

Library (stdlib only)::

    from slurm import start_cluster
    sc = start_cluster(tmp_path)               # ctl, n1, n2, login1, login2
    sc.hosts.ssh("login1", "sinfo -h").stdout  # the login nodes are a hosts.HostSet
    sc.exec("n1", ["ps", "-ef"])               # podman exec on any node
    sc.stop()

CLI: ``python3 testhosts/slurm.py up /tmp/slurm`` (then ``ssh -F /tmp/slurm/ssh_config login1``), ``down``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hosts as th

IMAGE = "localhost/remote-trainer-testhost-slurm:bookworm"
LOGINS = ("login1", "login2")
PARTITION = "debug"
URGENT = "urgent"  # same nodes, a higher tier: its jobs preempt (cancel) the default partition's
GRACE_TIME = 5  # seconds a preempted job gets between SIGTERM and its end
SLURMD_TIMEOUT = 20  # seconds a silent node takes to be DOWN (its jobs: NODE_FAIL)
KILL_WAIT = 30
READY_TIMEOUT = 60.0

SLURM_CONF = """\
ClusterName=rt
SlurmctldHost=ctl
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
KillWait={kill_wait}
SlurmdTimeout={slurmd_timeout}
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
NodeName={nodes} CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName={partition} Nodes={nodes} Default=YES State=UP PriorityTier=1 GraceTime={grace_time}
PartitionName={urgent} Nodes={nodes} State=UP PriorityTier=2
"""


class SlurmCluster:
    """A cluster started by :func:`start_cluster`: its login nodes as a HostSet, its nodes by name."""

    def __init__(self, hosts: th.HostSet, label: str, computes: Sequence[str], network: str) -> None:
        self.hosts = hosts
        self.label = label
        self.computes = list(computes)
        self.network = network

    @property
    def nodes(self) -> list[str]:
        return ["ctl", *self.computes, *LOGINS]

    def container(self, node: str) -> str:
        return f"{self.label}-{node}"

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        opts = ["--user", user] if user else []
        return th._podman("exec", *opts, self.container(node), *argv, check=check, timeout=timeout)

    def queue(self) -> list[str]:
        """Every job Slurm still holds (any state): "ID STATE" lines, from the controller."""
        out = self.exec("ctl", ["squeue", "-h", "-t", "all", "-o", "%i %T"]).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def active(self) -> list[str]:
        """Jobs pending, running or completing."""
        out = self.exec("ctl", ["squeue", "-h", "-o", "%i %T"]).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def processes(self, pattern: str) -> dict[str, list[str]]:
        """Per compute node, the command lines matching pattern (pgrep -af), without the pgrep itself."""
        found: dict[str, list[str]] = {}
        for node in self.computes:
            out = self.exec(node, ["pgrep", "-af", pattern], check=False).stdout
            lines = [line for line in out.splitlines() if "pgrep" not in line]
            if lines:
                found[node] = lines
        return found

    def cancel_all(self) -> None:
        """Leave the queue empty for the next test (as root: every user's jobs)."""
        self.exec("ctl", ["scancel", "--full", "--user=trainer"], check=False)
        self.wait_idle()

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.active():
            if time.monotonic() > deadline:
                raise th.TestHostError(f"slurm jobs still active after {timeout:.0f} s: {self.active()}")
            time.sleep(0.5)

    def stop_node(self, node: str) -> None:
        """A node dies (its container stops at once, every process with it); Slurm notices within
        SLURMD_TIMEOUT and ends its jobs as NODE_FAIL."""
        th._podman("stop", "-t", "0", self.container(node))

    def start_node(self, node: str) -> None:
        """The node is back (slurmd registers again) and idle once Slurm has it."""
        th._podman("start", self.container(node))
        _wait_for_nodes(self, time.monotonic() + READY_TIMEOUT + SLURMD_TIMEOUT)

    def stop(self) -> None:
        th.stop_all(self.label)
        th._podman("network", "rm", "-f", self.network, check=False)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_config(state: Path, computes: Sequence[str]) -> Path:
    slurm = state / "slurm"
    (slurm / "etc").mkdir(parents=True, exist_ok=True)
    key = slurm / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    key.chmod(0o644)  # the entry point installs it 0400 for munge; this directory stays 0700
    conf = SLURM_CONF.format(
        kill_wait=KILL_WAIT,
        slurmd_timeout=SLURMD_TIMEOUT,
        nodes=",".join(computes),
        partition=PARTITION,
        urgent=URGENT,
        grace_time=GRACE_TIME,
    )
    (slurm / "etc" / "slurm.conf").write_text(conf)
    return slurm


def _wait_for_nodes(sc: SlurmCluster, deadline: float) -> None:
    """Until every compute node is idle in sinfo (slurmd registered with slurmctld)."""
    while True:
        out = sc.exec("ctl", ["sinfo", "-h", "-N", "-o", "%N %t"], check=False).stdout
        states = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
        if all(states.get(n) == "idle" for n in sc.computes):
            return
        if time.monotonic() > deadline:
            raise th.TestHostError(f"slurm nodes not idle after {READY_TIMEOUT:.0f} s: {states or out}")
        time.sleep(0.2)


def start_cluster(
    state_dir: str | os.PathLike[str], computes: int = 2, label: str | None = None
) -> SlurmCluster:
    """Start ctl, n1..nN and login1/login2; return once every compute node is idle and SSH works on both
    login nodes. On any failure the started containers and the network are removed. Compute nodes that
    never registered (seen once in a loaded CI run: both "unk" for READY_TIMEOUT) get one fresh start."""
    try:
        return _start_cluster(state_dir, computes, label)
    except th.TestHostError as exc:
        if "not idle" not in str(exc):
            raise
        return _start_cluster(state_dir, computes, label)


def _start_cluster(state_dir: str | os.PathLike[str], computes: int, label: str | None) -> SlurmCluster:
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    label = label or f"rt-slurm-{uuid.uuid4().hex[:8]}"
    names = [f"n{i}" for i in range(1, computes + 1)]
    slurm = _write_config(state, names)
    home = state / "home"
    home.mkdir(exist_ok=True)
    os.chown(home, 1000, 1000)
    home.chmod(0o755)
    network = f"{label}-net"
    pubkey = th._keypair(state)
    th._podman("network", "create", network)
    deadline = time.monotonic() + READY_TIMEOUT
    roles = {"ctl": "ctld", **{n: "compute" for n in names}, **{n: "login" for n in LOGINS}}

    def boot(node: str) -> th.Host:
        container = f"{label}-{node}"
        run_args = [
            f"--network={network}",
            f"--network-alias={node}",
            "-e",
            f"SLURM_ROLE={roles[node]}",
            "-v",
            f"{slurm}:/slurm:ro",
            "-v",
            f"{slurm / 'etc'}:/etc/slurm:ro",
            "-v",
            f"{home}:/home/trainer",
        ]
        port = th._run_container(node, container, label, IMAGE, pubkey, run_args)
        return th.Host(node, container, port, th._read_host_key(container, deadline))

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(roles)) as pool:
            booted = list(pool.map(boot, roles))
        logins = [h for h in booted if h.name in LOGINS]
        hs = th.HostSet(state, label, IMAGE, logins)
        th._write_files(hs)
        hs._save()
        sc = SlurmCluster(hs, label, names, network)
        for name in LOGINS:
            th._wait_for_ssh(hs, name, deadline)
        _wait_for_nodes(sc, deadline)
    except BaseException:
        th.stop_all(label)
        th._podman("network", "rm", "-f", network, check=False)
        raise
    return sc


def load(state_dir: str | os.PathLike[str]) -> SlurmCluster:
    hs = th.HostSet.load(state_dir)
    computes = sorted({*_conf_nodes(Path(state_dir))})
    return SlurmCluster(hs, hs.label, computes, f"{hs.label}-net")


def _conf_nodes(state: Path) -> list[str]:
    for line in (state / "slurm" / "etc" / "slurm.conf").read_text().splitlines():
        if line.startswith("NodeName="):
            return line.split()[0].partition("=")[2].split(",")
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slurm.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build images if needed, start the cluster")
    up.add_argument("state_dir", type=Path)
    up.add_argument("--computes", type=int, default=2)
    down = sub.add_parser("down", help="remove the cluster recorded in STATE_DIR")
    down.add_argument("state_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            th.build_images()
            t0 = time.monotonic()
            sc = start_cluster(args.state_dir, computes=args.computes)
            print(f"slurm up in {time.monotonic() - t0:.1f} s (label {sc.label}): {' '.join(sc.nodes)}")
            print(f"ssh -F {shlex.quote(str(sc.hosts.ssh_config_path))} login1 sinfo")
        else:
            load(args.state_dir).stop()
    except (th.TestHostError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"slurm.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
