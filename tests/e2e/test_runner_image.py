"""The runner image (Containerfile), built with podman from the local base, run as the runtime's pod runs it.

The container gets the inventory, key and known_hosts where the `remote` runtime mounts them and reaches an
sshd test host over the podman network, with its host key verified.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid

import hosts as th


def test_runner_prints_the_output_and_returns_the_exit_code(runner_image, mounts):
    res = subprocess.run(
        ["podman", "run", "--rm", *mounts, runner_image, "/job/exit_with.py", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 3, res.stderr
    assert res.stdout == "about to end\n"


def test_runner_takes_the_script_from_its_command(runner_image, mounts):
    script = base64.b64encode(b"import sys\nprint('hello from', sys.argv[1:])\n").decode()
    res = subprocess.run(
        ["podman", "run", "--rm", *mounts, runner_image, "--script-b64", "hello.py", script, "a b", "$(x)"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello from ['a b', '$(x)']\n"


def test_sigterm_to_the_pod_stops_the_remote_job(runner_image, mounts, testhosts):
    tag = uuid.uuid4().hex
    name = f"rt-runner-{tag[:8]}"
    subprocess.run(
        ["podman", "run", "-d", "--name", name, *mounts, runner_image, "/job/sleeper.py", tag],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        deadline = time.monotonic() + 120
        while not testhosts.pids_matching("th1", tag) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert testhosts.pids_matching("th1", tag), "the job never started"
        subprocess.run(["podman", "stop", "-t", "60", name], check=True, capture_output=True, timeout=120)
        code = th._podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "143"
        assert testhosts.pids_matching("th1", tag) == []
        logs = th._podman("logs", name).stdout
        assert f"sleeping {tag}" in logs
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)


def test_runner_image_has_no_secret_baked_in(runner_image):
    res = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            runner_image,
            "-c",
            "ls /etc/remote-trainer 2>/dev/null; id -u",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.stdout.split() == ["1000"]


def test_a_multiline_secret_in_the_environment_leaks_no_fragment(runner_image, mounts):
    """The runner forwards the environment by name. Names read from `env | sed` took a PEM line ending in
    `=` for a name, and the driver's error then printed that fragment of the key to the pod's log."""
    fragment = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUFRAGMENT"
    pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"{fragment}=\n"
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    res = subprocess.run(
        ["podman", "run", "--rm", "-e", "DEPLOY_KEY", *mounts, runner_image, "/job/env_names.py"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DEPLOY_KEY": pem},
    )
    assert fragment not in res.stdout + res.stderr
    assert res.returncode == 0, res.stderr
    assert "DEPLOY_KEY" in res.stdout.split()
