"""The Kubeflow SDK with no cluster: RemoteTrainerClient runs CustomTrainer functions on sshd test hosts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from kubeflow.trainer import CustomTrainer
from kubeflow.trainer.options import Labels, Name

from driver.sdk import RemoteBackendConfig, RemoteTrainerClient


def count_to(n, tag):
    import time

    for i in range(n):
        print(f"{tag} step {i}", flush=True)
        time.sleep(0.2)


def fail_with_seven():
    print("failing now")
    raise SystemExit(7)


def sleep_long(tag):
    import time

    print("sleeping", tag, flush=True)
    time.sleep(600)


def report_six(lr):
    import six

    print("six", six.__version__, "lr", lr)


@pytest.fixture
def client(testhosts, tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_TRAINER_STATE_DIR", str(tmp_path))
    return RemoteTrainerClient(RemoteBackendConfig(inventory=str(testhosts.inventory_path), limit="th1"))


def test_train_follow_logs_wait_complete(client):
    tag = uuid.uuid4().hex[:6]
    name = client.train(trainer=CustomTrainer(func=count_to, func_args={"n": 10, "tag": tag}))
    lines = list(client.get_job_logs(name, follow=True))
    assert lines == [f"{tag} step {i}" for i in range(10)]
    job = client.wait_for_job_status(name, timeout=60, polling_interval=1)
    assert job.status == "Complete"
    assert [s.pod_name for s in job.steps] == ["th1"]
    assert name in [j.name for j in client.list_jobs()]


def test_a_failing_function_fails_with_its_exit_code(client):
    name = client.train(trainer=CustomTrainer(func=fail_with_seven), options=[Name(name="fails-7")])
    assert name == "fails-7"
    with pytest.raises(RuntimeError, match="exit code 7"):
        client.wait_for_job_status(name, timeout=60, polling_interval=1)
    assert client.get_job(name).status == "Failed"
    assert list(client.get_job_logs(name)) == ["failing now"]


def test_the_job_is_seen_from_a_second_process(client, testhosts, tmp_path):
    name = client.train(trainer=CustomTrainer(func=count_to, func_args={"n": 3, "tag": "x"}))
    code = (
        "from driver.sdk import RemoteBackendConfig, RemoteTrainerClient\n"
        f"cfg = RemoteBackendConfig(inventory={str(testhosts.inventory_path)!r}, limit='th1')\n"
        "c = RemoteTrainerClient(cfg)\n"
        f"print(c.wait_for_job_status({name!r}, timeout=60, polling_interval=1).status)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "REMOTE_TRAINER_STATE_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Complete"


def test_delete_job_leaves_nothing_running(client, testhosts):
    tag = uuid.uuid4().hex
    name = client.train(trainer=CustomTrainer(func=sleep_long, func_args={"tag": tag}))
    deadline = time.monotonic() + 60
    while not testhosts.pids_matching("th1", "sleep_long|" + name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.get_job(name).status == "Running"
    client.delete_job(name)
    assert testhosts.pids_matching("th1", name) == []
    assert name not in [j.name for j in client.list_jobs()]


def test_packages_are_installed_on_the_host(testhosts, wheelhouse, tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_TRAINER_STATE_DIR", str(tmp_path))
    client = RemoteTrainerClient(
        RemoteBackendConfig(
            inventory=str(testhosts.inventory_path), limit="th2", wheelhouse=str(wheelhouse), no_index=True
        )
    )
    name = client.train(
        trainer=CustomTrainer(func=report_six, func_args={"lr": 0.01}, packages_to_install=["six==1.16.0"])
    )
    assert list(client.get_job_logs(name, follow=True)) == ["six 1.16.0 lr 0.01"]
    assert client.wait_for_job_status(name, timeout=60, polling_interval=1).status == "Complete"


def test_runtimes_and_what_is_rejected(client):
    assert [r.name for r in client.list_runtimes()] == ["remote"]
    assert client.get_runtime("remote").trainer.framework == "remote"
    with pytest.raises(ValueError, match="not found"):
        client.get_runtime("torch-distributed")
    with pytest.raises(ValueError, match="Labels is not supported"):
        client.train(trainer=CustomTrainer(func=fail_with_seven), options=[Labels(labels={"a": "b"})])
    with pytest.raises(NotImplementedError):
        client.get_job_events("anything")


@pytest.mark.parametrize("bad", ["../escaped", "a/b", "Upper", "-lead", "trail-", "9lives", "x" * 64, ""])
def test_a_job_name_that_is_not_a_trainjob_name_is_refused(testhosts, tmp_path, monkeypatch, bad):
    """options.Name is a TrainJob's name (a DNS-1123 label starting with a letter), never a path: `../x`
    made the job's directory outside the jobs root and ran the function."""
    state = tmp_path / "state"
    monkeypatch.setenv("REMOTE_TRAINER_STATE_DIR", str(state))
    client = RemoteTrainerClient(RemoteBackendConfig(inventory=str(testhosts.inventory_path), limit="th1"))
    with pytest.raises(ValueError, match=r"invalid job name .*\(options\.Name\).*DNS-1123"):
        client.train(trainer=CustomTrainer(func=fail_with_seven), options=[Name(name=bad)])
    assert not (state / "escaped").exists() and not (state / "jobs").exists()
