"""Bad input to the cluster playbooks fails at once with one clear message, before any cluster is reached."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def playbook(name: str, *extra: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        # No cluster: a playbook that got as far as the API would fail on this kubeconfig instead.
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            str(REPO / "ansible_collections/remote_trainer/core/playbooks" / name),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_trainer_manifests_that_are_neither_a_url_nor_a_directory(tmp_path):
    res = playbook(
        "trainer.yml", "-e", f"kubeflow_trainer_manifests={tmp_path / 'nowhere'}", tmp_path=tmp_path
    )
    assert res.returncode == 2
    assert f"kubeflow_trainer_manifests {tmp_path / 'nowhere'} is neither a URL nor a directory" in res.stdout
    assert "no-kubeconfig" not in res.stdout


def test_an_unknown_cluster_kind(tmp_path):
    res = playbook(
        "cluster.yml", "-e", "@" + str(REPO / "minikube" / "profile.yml"), "-e", "cluster_kind=kind",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2
    assert "cluster_kind (CLUSTER=) must be minikube or existing, not kind" in res.stdout
