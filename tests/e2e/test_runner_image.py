"""The runner image (Containerfile), built with podman from the local base, run as the runtime's pod runs it.

The container gets the inventory, key and known_hosts where the `remote` runtime mounts them and reaches an
sshd test host over the podman network, with its host key verified.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import time
import uuid

import hosts as th
import pytest
from driverproc import REPO, SCRIPTS

BASE = "localhost/debian-min:bookworm"
SOURCES = [
    "Containerfile",
    ".containerignore",
    "pyproject.toml",
    "README.md",
    "ansible.cfg",
    "driver",
    "playbooks",
    "roles",
    "runner",
]


def content_tag() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        path = REPO / name
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
        for f in files:
            digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def runner_image(testhost_images) -> str:
    image = f"localhost/remote-trainer-runner:{content_tag()}"
    if th._podman("image", "exists", image, check=False).returncode != 0:
        subprocess.run(
            [
                "podman",
                "build",
                "-q",
                "--build-arg",
                f"BASE={BASE}",
                "--build-arg",
                "PIP_CERT=/run/host-ca.crt",
                "-v",
                f"{th.CA_BUNDLE}:/run/host-ca.crt:ro",
                "-t",
                image,
                "-f",
                "Containerfile",
                ".",
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=900,
        )
    return image


@pytest.fixture
def mounts(testhosts, tmp_path) -> list[str]:
    """The runtime's mounts: inventory (ConfigMap) and key + known_hosts (Secret, group-readable)."""
    ip = testhosts.container_ip("th1")
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "hosts.ini").write_text(f"th1 ansible_host={ip} ansible_port=22 ansible_user=trainer\n")
    ssh = tmp_path / "ssh"
    ssh.mkdir()
    shutil.copy(testhosts.key_path, ssh / "id_ed25519")
    (ssh / "known_hosts").write_text(f"{ip} {testhosts.hosts['th1'].host_key}\n")
    for path in (ssh / "id_ed25519", ssh / "known_hosts"):
        path.chmod(0o440)
        subprocess.run(["chown", "0:1000", str(path)], check=True)
    return [
        "-v",
        f"{inv}:/etc/remote-trainer/inventory:ro",
        "-v",
        f"{ssh}:/etc/remote-trainer/ssh:ro",
        "-v",
        f"{SCRIPTS}:/job:ro",
    ]


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
