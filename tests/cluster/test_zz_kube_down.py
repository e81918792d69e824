"""`make kube-down` (last of the cluster tests: the file name sorts last): nothing of the cluster is left.

Checked from outside, not with cluster.py's own leftovers(): processes, mounts, network devices, kube-proxy's
and kubelet's iptables chains, the containers' cgroups and runc state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO, kubecluster

pytestmark = pytest.mark.cluster

NAMES = {
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
    "containerd", "containerd-shim-runc-v2", "trainer-controller-manager", "jobset-manager", "manager",
    "pause",
}  # fmt: skip


def processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
            # A zombie has ended; only its parent (here PID 1, the orphans' reaper) can remove its entry.
            if comm in NAMES and state != "Z":
                found.append(f"{entry.name} {comm}")
    return found


def test_kube_down_leaves_nothing(kube):
    # The cluster runs with pods (Trainer, JobSet) before it goes down.
    assert any(p.endswith(" kubelet") for p in processes())
    assert any(p.endswith(" pause") for p in processes())
    res = subprocess.run(["make", "-C", str(REPO), "kube-down"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert processes() == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "/var/lib/rtkube" not in mounts and "/run/rtkube" not in mounts
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert kubecluster.BRIDGE not in links
    # veths of pods sit on the bridge: none may outlive it (their peers would be in no namespace left)
    assert "master " + kubecluster.BRIDGE not in links
    for family in ("iptables-save", "ip6tables-save"):
        rules = subprocess.run([family], capture_output=True, text=True, check=True).stdout
        assert "KUBE-" not in rules, family
    assert not list(Path("/sys/fs/cgroup").glob("*/kubepods")), "cgroups of pods remain"
    assert not Path("/run/rtkube").exists()
