"""`make cluster-up CLUSTER=existing` against the real single-node cluster: the runner image imported into
the node's containerd, Kubeflow Trainer from local manifests, the `remote` runtime; then `driver cluster
status` and a TrainJob whose pod runs."""

from __future__ import annotations

import json
import subprocess
import time

import jsonschema
import pytest
from conftest import REPO, driver, kubectl

pytestmark = pytest.mark.cluster

SCRIPTS = REPO / "tests" / "scripts"


def test_a_second_cluster_up_changes_nothing(installed):
    assert installed["changed"] == 0, installed
    assert installed["failed"] == 0


def test_cluster_status_reports_every_check_ready(kube, installed):
    res = driver(kube, "cluster", "status")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("ok ") for line in lines), res.stdout
    assert "API server v1.34.4" in lines[0]
    assert "trainer-controller-manager:v2.3.0" in res.stdout
    assert "localhost/remote-trainer-runner:" in res.stdout


def cluster_status_schema() -> dict:
    return json.loads((REPO / "driver" / "cli" / "schemas" / "cluster-status.schema.json").read_text())


def test_cluster_status_json_follows_its_schema(kube, installed):
    res = driver(kube, "cluster", "status", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    document = json.loads(res.stdout)
    jsonschema.Draft202012Validator(cluster_status_schema()).validate(document)
    assert document["ready"] is True and len(document["checks"]) == 6
    assert all(check["ok"] for check in document["checks"])
    assert any("localhost/remote-trainer-runner:" in check["detail"] for check in document["checks"])


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
        as_json = driver(kube, "cluster", "status", "--json")
        assert as_json.returncode == 83, as_json.stderr
        document = json.loads(as_json.stdout)
        jsonschema.Draft202012Validator(cluster_status_schema()).validate(document)
        assert document["ready"] is False
        missing = [check for check in document["checks"] if not check["ok"]]
        assert [check["name"] for check in missing] == ["runtime remote"], document
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(key, None)
        subprocess.run(
            ["kubectl", "apply", "--server-side", "--field-manager", "remote-trainer", "-f", "-"],
            input=json.dumps(saved), env=kube, check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
