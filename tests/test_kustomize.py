"""The kustomize overlays render, and what they render is valid against Kubeflow Trainer v2.3.0's CRDs; the
runner pod meets Pod Security "restricted", and the SSH key is only in the ssh-agent sidecar."""

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
    (runtime,) = [
        d for d in render(KUSTOMIZE / "overlays" / "minikube") if d["kind"] == "ClusterTrainingRuntime"
    ]
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


def pod_of(overlay: Path) -> dict:
    (runtime,) = [d for d in render(overlay) if d["kind"] == "ClusterTrainingRuntime"]
    return runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_the_runner_pod_meets_pod_security_restricted(overlay):
    pod = pod_of(overlay)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all(set(v) & {"secret", "emptyDir"} for v in pod["volumes"]), pod["volumes"]  # no hostPath
    containers = pod["containers"] + pod["initContainers"]
    assert [c["name"] for c in containers] == ["node", "ssh-agent"]
    for c in containers:
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}, c[
            "name"
        ]
        assert "runAsUser" not in ctx or ctx["runAsUser"] != 0
        assert c["image"] == pod["containers"][0]["image"] and "imagePullPolicy" in c


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_only_the_agent_sidecar_has_the_key(overlay):
    pod = pod_of(overlay)
    from_ssh_secret = {
        v["name"]: v["secret"].get("items")
        for v in pod["volumes"]
        if v.get("secret", {}).get("secretName") == "remote-trainer-ssh"
    }
    holds_key = {
        name for name, items in from_ssh_secret.items() if items is None or "id_ed25519" in str(items)
    }
    assert holds_key == {"key"}, from_ssh_secret
    (node,) = pod["containers"]
    (agent,) = pod["initContainers"]
    assert not {m["name"] for m in node["volumeMounts"]} & holds_key
    assert "remote-trainer-ssh" not in str(node.get("env", [])) + str(node.get("envFrom", []))
    assert {m["name"] for m in agent["volumeMounts"]} == {"key", "agent"}
    # A native sidecar: started (key loaded, its probe says) before node, stopped after it.
    assert agent["restartPolicy"] == "Always" and "ssh-add -l" in str(agent["startupProbe"])
    assert not pod.get("shareProcessNamespace")
    assert {"name": "SSH_AUTH_SOCK", "value": "/run/remote-trainer/agent/agent.sock"} in node["env"]
    # The inventory (it may hold passwords) is a Secret, not a ConfigMap.
    (inventory,) = [v for v in pod["volumes"] if v["name"] == "inventory"]
    assert inventory["secret"]["secretName"] == "remote-trainer-inventory"


def test_the_admission_policy_guards_trainjobs_on_the_runtime():
    docs = render(KUSTOMIZE / "base")
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    rules = " ".join(v["expression"] for v in policy["spec"]["validations"])
    for field in ("runtimePatches", "initializer", "secretKeyRef", "fileKeyRef", "remote-trainer-ssh"):
        assert field in rules
