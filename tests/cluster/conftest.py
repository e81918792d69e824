"""Fixtures of the cluster tests: the single-node Kubernetes of testhosts/kube (started when it is not up)
and an sshd test host that the runner pod reaches over the pod network, its host key verified."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testhosts" / "kube"))

import cluster as kubecluster  # testhosts/kube/ is not an installed package
import hosts as th

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kube() -> dict[str, str]:
    """Environment for kubectl, the driver and make against the test cluster (up after this)."""
    subprocess.run(
        [sys.executable, str(REPO / "testhosts" / "kube" / "cluster.py"), "up"], check=True, timeout=3600
    )
    return {
        **os.environ,
        "KUBECONFIG": str(kubecluster.KUBECONFIG),
        "PATH": f"{kubecluster.BIN}:{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
    }


def kubectl(kube: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> str:
    res = subprocess.run(["kubectl", *args], env=kube, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr}")
    return res.stdout


@pytest.fixture(scope="session")
def pod_host(start_testhosts, wheelhouse, tmp_path_factory) -> tuple[th.HostSet, Path]:
    """th1, and hosts.ini, id_ed25519 and known_hosts for the runtime: th1 at its container address
    (what a pod reaches), with its real host key. Requirements install on th1 offline from the test
    wheelhouse (six, iniconfig), copied to /opt/wheels there."""
    hs = start_testhosts(1)
    ip = hs.container_ip("th1")
    th._podman("cp", str(wheelhouse), f"{hs.hosts['th1'].container}:/opt/wheels")
    hs.ssh("th1", "sudo chmod -R a+rX /opt/wheels")
    d = tmp_path_factory.mktemp("pod-files")
    offline = "remote_host_find_links='[\"/opt/wheels\"]' remote_host_no_index=true"
    (d / "hosts.ini").write_text(f"th1 ansible_host={ip} ansible_port=22 ansible_user=trainer {offline}\n")
    shutil.copy(hs.key_path, d / "id_ed25519")
    (d / "known_hosts").write_text(f"{ip} {hs.hosts['th1'].host_key}\n")
    (d / "id_ed25519").chmod(0o600)
    return hs, d


@pytest.fixture(scope="session")
def pod_files(pod_host) -> Path:
    return pod_host[1]


def recap(stdout: str) -> dict[str, int]:
    (line,) = [ln for ln in stdout.splitlines() if re.match(r"^localhost\s+:\s+ok=", ln)]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture(scope="session")
def installed(kube, pod_files, tmp_path_factory) -> dict[str, int]:
    """cluster-up twice; the second run's recap."""
    tmp = tmp_path_factory.mktemp("cluster-up")
    files = (pod_files / "hosts.ini", pod_files / "id_ed25519", pod_files / "known_hosts")
    first = kubecluster.install_runtime(*files, tmp)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert recap(first.stdout)["failed"] == 0
    second = kubecluster.install_runtime(*files, tmp)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    return recap(second.stdout)


def driver(kube: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "driver"), *args],
        env=kube,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait(what: str, check, timeout: float = 180, every: float = 0.2):
    """check()'s first true value, asked every `every` seconds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
