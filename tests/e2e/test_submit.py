"""`driver submit`: its TrainJob validates against the v2.3.0 CRD; without a cluster, one clear error."""

from __future__ import annotations

import base64
import socket

import yaml
from crds import validate
from driverproc import REPO, SCRIPTS, error_lines, run_driver

HELLO = str(REPO / "examples" / "hello.py")


def test_dry_run_trainjob_is_valid_and_carries_the_script(tmp_path):
    res = run_driver(
        [
            "submit",
            HELLO,
            "--dry-run",
            "--name",
            "hello-1",
            "-n",
            "team-a",
            "--env",
            "A=1",
            "--timeout",
            "2h",
            "--",
            "--epochs",
            "2",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    job, secret = yaml.safe_load_all(res.stdout)
    assert validate(job) == []
    assert job["metadata"] == {"name": "hello-1", "namespace": "team-a"}
    assert job["spec"]["runtimeRef"]["name"] == "remote"
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    command = job["spec"]["trainer"]["command"]
    assert command[:3] == ["remote-trainer-runner", "--script-b64", "hello.py"]
    assert base64.b64decode(command[3]) == (REPO / "examples" / "hello.py").read_bytes()
    assert command[4:] == ["--epochs", "2"]
    assert job["spec"]["trainer"]["env"] == [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "hello-1-env", "key": "A"}}}
    ]
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "hello-1-env"
    assert secret["stringData"] == {"A": "(hidden)"}


def test_env_values_are_in_no_document_of_the_dry_run(tmp_path):
    """`-e K=V` and `-e K` (the value from here): neither value is in the TrainJob, nor printed."""
    res = run_driver(
        ["submit", HELLO, "--dry-run", "--name", "sec-1", "-e", "API_KEY=sk-live-123", "-e", "TOKEN",
         "--limit", "th1"],
        tmp_path,
        extra_env={"TOKEN": "tok-from-here-456"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "sk-live-123" not in res.stdout + res.stderr and "tok-from-here-456" not in res.stdout + res.stderr
    job, secret = yaml.safe_load_all(res.stdout)
    assert validate(job) == []
    assert job["spec"]["trainer"]["env"] == [
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "sec-1-env", "key": "API_KEY"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec-1-env", "key": "TOKEN"}}},
        {"name": "REMOTE_TRAINER_LIMIT", "value": "th1"},
    ]
    assert sorted(secret["stringData"]) == ["API_KEY", "TOKEN"]


def test_without_env_there_is_no_secret(tmp_path):
    res = run_driver(["submit", HELLO, "--dry-run", "--name", "plain-1"], tmp_path)
    assert res.returncode == 0, res.stderr
    (job,) = yaml.safe_load_all(res.stdout)
    assert "env" not in job["spec"]["trainer"]


def test_generated_names_follow_the_trainjob_rules(tmp_path):
    for _ in range(3):
        (job,) = yaml.safe_load_all(run_driver(["submit", HELLO, "--dry-run"], tmp_path).stdout)
        assert validate(job) == []


def test_invalid_name_is_refused(tmp_path):
    res = run_driver(["submit", HELLO, "--dry-run", "--name", "Hello_World"], tmp_path)
    assert res.returncode == 2
    assert "invalid --name 'Hello_World'" in error_lines(res.stderr)[0]


def dead_kubeconfig(tmp_path):
    """A kubeconfig whose API server is a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dead",
                "clusters": [{"name": "dead", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
            }
        )
    )
    return kubeconfig


def test_no_cluster_is_one_clear_error(tmp_path):
    kubeconfig = dead_kubeconfig(tmp_path)
    res = run_driver(
        ["submit", str(SCRIPTS / "exit_with.py")], tmp_path, extra_env={"KUBECONFIG": str(kubeconfig)}
    )
    assert res.returncode == 82
    (line,) = error_lines(res.stderr)
    assert "unreachable" in line and "Traceback" not in res.stderr


def test_cluster_status_without_a_cluster(tmp_path):
    res = run_driver(
        ["cluster", "status"], tmp_path, extra_env={"KUBECONFIG": str(dead_kubeconfig(tmp_path))}
    )
    assert res.returncode == 82
    (line,) = error_lines(res.stderr)
    assert "unreachable" in line and "Connection refused" in line
