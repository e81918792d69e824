"""The Kubeflow SDK (its default Kubernetes backend, its own code) against the real cluster and runtime
`remote`: the function runs on the sshd host, its packages are installed there (not in the pod), its log
comes live, its status is the function's, and delete_job stops the remote run."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import pytest
from conftest import kubecluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def client(kube, installed, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kubecluster.KUBECONFIG))
    from kubeflow.trainer import TrainerClient

    made = TrainerClient()
    jobs: list[str] = []
    yield made, jobs
    for name in jobs:
        with contextlib.suppress(Exception):  # already gone
            made.delete_job(name)


def writes_a_file(path: str, tag: str):
    import os
    import sys

    import six

    with open(path, "w") as f:
        f.write(f"{tag} {six.__version__} {os.uname().nodename}\n")
    print(f"wrote {path} with six from {six.__file__.split('/site-packages')[0]}", flush=True)
    print("python", sys.version_info[:2], flush=True)


def waits_for_a_marker(marker: str):
    import os
    import time

    print("first line", flush=True)
    for _ in range(1200):
        if os.path.exists(marker):
            print("got the marker", flush=True)
            return
        time.sleep(0.05)
    raise SystemExit(9)


def fails(code: int):
    print("failing on purpose", flush=True)
    raise SystemExit(code)


def sleeps(tag: str):
    import subprocess
    import sys
    import time

    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", tag])
    print(f"sleeping {tag}", flush=True)
    time.sleep(600)


def test_list_runtimes_lists_remote(client):
    made, _ = client
    assert "remote" in [r.name for r in made.list_runtimes()]


def test_a_custom_trainer_runs_on_the_host_with_its_packages_there(client, pod_host, kube):
    from kubeflow.trainer import CustomTrainer

    made, jobs = client
    hs, _ = pod_host
    tag = uuid.uuid4().hex
    path = f"/tmp/sdk-{tag}"
    runtime = next(r for r in made.list_runtimes() if r.name == "remote")
    name = made.train(
        runtime=runtime,
        trainer=CustomTrainer(
            func=writes_a_file,
            func_args={"path": path, "tag": tag},
            packages_to_install=["six==1.16.0"],
            env={"SDK_SETTING": "on"},
        ),
    )
    jobs.append(name)
    job = made.wait_for_job_status(name, status={"Complete"}, timeout=300, polling_interval=1)
    assert job.status == "Complete"
    written = hs.ssh("th1", f"cat {path}").stdout.split()
    assert written[:2] == [tag, "1.16.0"]
    logs = "".join(made.get_job_logs(name))
    # six came from a venv the driver made on the host, not from the pod (the image has no six)
    assert "/.cache/remote-trainer/" in logs, logs
    from conftest import kubectl

    pod = kubectl(kube, "get", "pods", "-l", f"jobset.sigs.k8s.io/jobset-name={name}", "-o", "name").split()[
        0
    ]
    probe = kubectl(kube, "exec", pod, "-c", "node", "--", "python3", "-c", "import six", check=False)
    assert "No module named" in probe or probe == "", probe


def test_get_job_logs_follows_live_and_a_failing_function_fails(client, pod_host):
    from kubeflow.trainer import CustomTrainer

    made, jobs = client
    hs, _ = pod_host
    marker = f"/tmp/sdk-marker-{uuid.uuid4().hex}"
    name = made.train(
        runtime="remote", trainer=CustomTrainer(func=waits_for_a_marker, func_args={"marker": marker})
    )
    jobs.append(name)
    made.wait_for_job_status(name, status={"Running"}, timeout=300, polling_interval=1)
    seen: list[str] = []
    got_first = threading.Event()

    def read() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not seen:
            try:
                for line in made.get_job_logs(name, follow=True):
                    seen.append(line)
                    if "first line" in line:
                        got_first.set()
            except Exception:  # the container may not have started yet
                time.sleep(0.5)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # The first line arrives while the function still waits on the host: live, not at the end.
    assert got_first.wait(120), seen
    hs.ssh("th1", f"touch {marker}")
    made.wait_for_job_status(name, status={"Complete"}, timeout=120, polling_interval=1)
    reader.join(60)
    assert any("got the marker" in line for line in seen), seen

    failing = made.train(runtime="remote", trainer=CustomTrainer(func=fails, func_args={"code": 3}))
    jobs.append(failing)
    job = made.wait_for_job_status(failing, status={"Failed"}, timeout=300, polling_interval=1)
    assert job.status == "Failed"


def test_delete_job_stops_the_remote_run(client, pod_host):
    from kubeflow.trainer import CustomTrainer

    made, _ = client
    hs, _ = pod_host
    tag = uuid.uuid4().hex
    name = made.train(runtime="remote", trainer=CustomTrainer(func=sleeps, func_args={"tag": tag}))
    deadline = time.monotonic() + 180
    # The tag is in the argv of the function's child (the function itself runs as `python FILE.py`).
    while time.monotonic() < deadline and not hs.pids_matching("th1", tag):
        time.sleep(0.3)
    assert hs.pids_matching("th1", tag), "the function never started on th1"
    made.delete_job(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and hs.pids_matching("th1", tag):
        time.sleep(0.2)
    assert hs.pids_matching("th1", tag) == []
