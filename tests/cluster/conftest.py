"""Fixtures of the cluster tests: the single-node Kubernetes of testhosts/kube (started when it is not up)
and an sshd test host that the runner pod reaches over the pod network, its host key verified."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testhosts" / "kube"))

import cluster as kubecluster  # testhosts/kube/ is not an installed package

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


@pytest.fixture(scope="module")
def pod_files(start_testhosts, tmp_path_factory) -> Path:
    """hosts.ini, id_ed25519 and known_hosts for the runtime: th1 at its container address (what a pod
    reaches), with its real host key."""
    hs = start_testhosts(1)
    ip = hs.container_ip("th1")
    d = tmp_path_factory.mktemp("pod-files")
    (d / "hosts.ini").write_text(f"th1 ansible_host={ip} ansible_port=22 ansible_user=trainer\n")
    shutil.copy(hs.key_path, d / "id_ed25519")
    (d / "known_hosts").write_text(f"{ip} {hs.hosts['th1'].host_key}\n")
    (d / "id_ed25519").chmod(0o600)
    return d
