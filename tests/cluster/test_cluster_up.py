"""`make cluster-up CLUSTER=existing` against the real single-node cluster: the runner image imported into
the node's containerd, Kubeflow Trainer from local manifests, the `remote` runtime; then `driver cluster
status` and a TrainJob whose pod runs."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, kubecluster, kubectl

pytestmark = pytest.mark.cluster

SCRIPTS = REPO / "tests" / "scripts"


def cluster_up(kube: dict[str, str], pod_files: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    extra = tmp_path / "vars.json"
    extra.write_text(
        json.dumps(
            {
                "kubeflow_trainer_manifests": str(kubecluster.trainer_manifests()),
                # No registry here: the runner image is built on the local debootstrap base, and pip in
                # the build trusts this machine's CA bundle (a TLS-intercepting proxy sits in front of PyPI).
                "runner_image_base": "localhost/debian-min:bookworm",
                "runner_image_build_args": [
                    "--build-arg", "PIP_CERT=/run/host-ca.crt",
                    "--volume", "/etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro",
                ],
            }
        )
    )  # fmt: skip
    return subprocess.run(
        [
            "make", "-C", str(REPO), "cluster-up", "CLUSTER=existing",
            f"CONTAINERD={kubecluster.CONTAINERD_SOCK}", f"CTR={kubecluster.BIN / 'ctr'}",
            f"INVENTORY={pod_files / 'hosts.ini'}", f"SSH_KEY={pod_files / 'id_ed25519'}",
            f"KNOWN_HOSTS={pod_files / 'known_hosts'}", f"CLUSTER_EXTRA_VARS=-e @{extra}",
        ],
        env=kube, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def recap(stdout: str) -> dict[str, int]:
    (line,) = [ln for ln in stdout.splitlines() if re.match(r"^localhost\s+:\s+ok=", ln)]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture(scope="module")
def installed(kube, pod_files, tmp_path_factory) -> dict[str, int]:
    tmp = tmp_path_factory.mktemp("cluster-up")
    first = cluster_up(kube, pod_files, tmp)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert recap(first.stdout)["failed"] == 0
    second = cluster_up(kube, pod_files, tmp)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    return recap(second.stdout)


def test_a_second_cluster_up_changes_nothing(installed):
    assert installed["changed"] == 0, installed
    assert installed["failed"] == 0


def driver(kube: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "driver"), *args], env=kube, capture_output=True, text=True, timeout=120
    )


def test_cluster_status_reports_every_check_ready(kube, installed):
    res = driver(kube, "cluster", "status")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("ok ") for line in lines), res.stdout
    assert "API server v1.34.4" in lines[0]
    assert "trainer-controller-manager:v2.3.0" in res.stdout
    assert "localhost/remote-trainer-runner:" in res.stdout


def test_a_trainjob_on_runtime_remote_reaches_a_running_pod(kube, installed):
    name = "smoke-" + str(int(time.time()))[-6:]
    res = driver(kube, "submit", str(SCRIPTS / "sleeper.py"), "--name", name, "--", name)
    assert res.returncode == 0, res.stderr
    try:
        deadline = time.monotonic() + 180
        phase = ""
        while time.monotonic() < deadline:
            phase = kubectl(
                kube, "get", "pods", "-l", f"jobset.sigs.k8s.io/jobset-name={name}",
                "-o", "jsonpath={.items[*].status.phase}",
            ).strip()  # fmt: skip
            if phase == "Running":
                break
            time.sleep(1)
        assert phase == "Running", kubectl(kube, "describe", "trainjob", name) + kubectl(
            kube, "get", "pods", "-A"
        )
        # The pod runs the runner, which reaches th1 over SSH: its log says the script runs there.
        deadline = time.monotonic() + 180
        logs = ""
        while time.monotonic() < deadline and f"sleeping {name}" not in logs:
            logs = kubectl(kube, "logs", "-l", f"jobset.sigs.k8s.io/jobset-name={name}", check=False)
            time.sleep(1)
        assert f"sleeping {name}" in logs, logs
    finally:
        kubectl(kube, "delete", "trainjob", name, "--wait=true", check=False, timeout=180)


def test_cluster_status_exits_83_without_the_runtime(kube, installed):
    saved = json.loads(kubectl(kube, "get", "clustertrainingruntime", "remote", "-o", "json"))
    kubectl(kube, "delete", "clustertrainingruntime", "remote")
    try:
        res = driver(kube, "cluster", "status")
        assert res.returncode == 83, res.stdout + res.stderr
        assert "MISSING  runtime remote: not installed" in res.stdout
        assert any(line.startswith("error: the cluster is not ready") for line in res.stderr.splitlines())
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(key, None)
        subprocess.run(
            ["kubectl", "apply", "--server-side", "--field-manager", "remote-trainer", "-f", "-"],
            input=json.dumps(saved), env=kube, check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
