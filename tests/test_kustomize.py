"""The kustomize overlays render, and what they render is valid against Kubeflow Trainer v2.3.0's CRDs."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from crds import KUSTOMIZE, validate

OVERLAYS = sorted(p for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())


def render(path: Path) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_renders_a_valid_remote_runtime(overlay):
    (runtime,) = [d for d in render(overlay) if d["kind"] == "ClusterTrainingRuntime"]
    assert runtime["metadata"]["name"] == "remote"
    assert validate(runtime) == []
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    # Nothing of the cluster reaches the external host through the forwarded environment.
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    container = pod["containers"][0]
    assert container["name"] == "node"
    if overlay.name == "minikube":
        assert ":" in container["image"].rsplit("/", 1)[-1], "the image tag is pinned"
        assert container["imagePullPolicy"] == "Never"
    else:  # registry: the image is the one remote_runtime_image names (tests/test_roles.py)
        assert container["imagePullPolicy"] == "IfNotPresent"


def test_the_validator_catches_what_it_must(tmp_path):
    (runtime,) = render(KUSTOMIZE / "overlays" / "minikube")
    broken = copy.deepcopy(runtime)
    broken["spec"]["mlPolicy"]["numNodes"] = "one"
    broken["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"][
        "containers"
    ][0]["name"] = "trainer"
    broken["spec"]["mlPolicy"]["kindd"] = 1
    broken["metadata"]["name"] = "Remote_Runtime"
    problems = " | ".join(validate(broken))
    assert "'one' is not of type 'integer'" in problems
    assert "'kindd' was unexpected" in problems
    assert "no container named 'node'" in problems
    assert "metadata.name 'Remote_Runtime'" in problems
