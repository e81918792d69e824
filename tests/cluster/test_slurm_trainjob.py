"""TrainJobs on the `remote` runtime whose inventory names a Slurm login node (testhosts/slurm.py, reached
from the pod over the pod network): queued there, the pod's log shows the queue and the output live, the
TrainJob fails with the script's exit code, and deleting it cancels the Slurm job."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid

import hosts as th
import pytest
import slurm as slurm_hosts  # testhosts/slurm.py (tests/conftest.py puts testhosts/ on the path)
from conftest import REPO, driver, kubectl

pytestmark = pytest.mark.cluster

SCRIPTS = REPO / "tests" / "scripts"


def _data(kube, kind: str, name: str) -> dict[str, str]:
    return json.loads(kubectl(kube, "get", kind, name, "-o", "json")).get("data") or {}


@pytest.fixture(scope="module")
def slurm_runtime(kube, installed, pod_files, testhost_label, tmp_path_factory):
    """A Slurm cluster, its login node `hpc` added to the runtime's inventory (training_job_executor=slurm)
    and its host key to the runtime's known_hosts, the pod's key authorized there; the runtime as it was
    after."""
    sc = slurm_hosts.start_cluster(tmp_path_factory.mktemp("slurm"), label=f"{testhost_label}-kslurm")
    try:
        out = th._podman(
            "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{sc.network}").IPAddress}}}}',
            sc.container("login1"),
        ).stdout.strip()  # fmt: skip
        pub = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(pod_files / "id_ed25519")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        sc.hosts.ssh("login1", "cat >> ~/.ssh/authorized_keys", input=pub)
        inventory = base64.b64decode(_data(kube, "secret", "remote-trainer-inventory")["hosts.ini"]).decode()
        known = base64.b64decode(_data(kube, "secret", "remote-trainer-ssh")["known_hosts"]).decode()
        hpc = f"hpc ansible_host={out} ansible_port=22 ansible_user=trainer training_job_executor=slurm\n"
        key = f"{out} {sc.hosts.hosts['login1'].host_key}\n"
        kubectl(kube, "patch", "secret", "remote-trainer-inventory", "--type=merge",
                "-p", json.dumps({"stringData": {"hosts.ini": inventory + hpc}}))  # fmt: skip
        kubectl(kube, "patch", "secret", "remote-trainer-ssh", "--type=merge",
                "-p", json.dumps({"stringData": {"known_hosts": known + key}}))  # fmt: skip
        try:
            yield sc
        finally:
            kubectl(kube, "patch", "secret", "remote-trainer-inventory", "--type=merge",
                    "-p", json.dumps({"stringData": {"hosts.ini": inventory}}))  # fmt: skip
            kubectl(kube, "patch", "secret", "remote-trainer-ssh", "--type=merge",
                    "-p", json.dumps({"stringData": {"known_hosts": known}}))  # fmt: skip
    finally:
        sc.stop()


def test_a_trainjob_queued_to_slurm_shows_the_queue_then_the_output_and_fails_with_its_code(
    kube, slurm_runtime
):
    sc = slurm_runtime
    blocker = sc.hosts.ssh(
        "login1", "sbatch --parsable --nodes=2 --exclusive --wrap 'sleep 300'"
    ).stdout.strip()
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "driver"), "submit", "-f", "-l", "hpc", str(SCRIPTS / "counter.py"),
         "--name", name, "--", "5", "0.2", "3"],
        env=kube, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        selector = f"jobset.sigs.k8s.io/jobset-name={name}"
        # The pod's log says it waits (the driver's first poll saw it pending) before the nodes are freed.
        while "is queued" not in kubectl(kube, "logs", "-l", selector, "--tail=-1", check=False):
            assert time.monotonic() < deadline and proc.poll() is None, "the pod never said it was queued"
            time.sleep(1)
        assert any("PENDING" in q for q in sc.queue() if q.split()[0] != blocker), sc.queue()
        sc.hosts.ssh("login1", f"scancel {blocker}")
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "line 0\n" in out and out.endswith("end\n"), out
    logs = kubectl(kube, "logs", "-l", f"jobset.sigs.k8s.io/jobset-name={name}", "--tail=-1")
    assert "is queued" in logs and "is running on n" in logs, logs
    assert logs.index("is queued") < logs.index("is running on n") < logs.index("line 0"), logs
    kubectl(kube, "delete", "trainjob", name, "--wait=false")


def test_deleting_the_trainjob_cancels_the_slurm_job(kube, slurm_runtime):
    sc = slurm_runtime
    name = f"slurm-del-{uuid.uuid4().hex[:8]}"
    res = driver(kube, "submit", "-l", "hpc", str(SCRIPTS / "sleeper.py"), "--name", name, "--", "kslurm")
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 300
    while not sc.processes("sleeping|sleeper.py"):
        assert time.monotonic() < deadline, "the Slurm job never ran"
        time.sleep(1)
    kubectl(kube, "delete", "trainjob", name, "--wait=true", timeout=180)
    deadline = time.monotonic() + 60
    while sc.active() or sc.processes("sleeper.py"):
        assert time.monotonic() < deadline, f"left behind: {sc.active()} {sc.processes('sleeper.py')}"
        time.sleep(0.5)
