"""The container engine's probe (plugins/plugin_utils/engine.py), run by /bin/sh on this machine against
stand-ins for podman and docker on a PATH of its own, and the reading of its NAME=value lines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.remote_trainer.core.plugins.plugin_utils.engine import (
    CDI_DIRS,
    engine_candidates,
    engine_probe_script,
    engine_probe_values,
)

PODMAN_ROOTLESS = """\
[ "$1 $2 $3" = 'info --format {{.Host.Security.Rootless}}' ] || exit 2
echo true
"""
PODMAN_ROOTFUL = PODMAN_ROOTLESS.replace("echo true", "echo false")
DOCKER_INFO = "[ \"$1 $2 $3\" = 'info --format {{.ServerVersion}} {{.SecurityOptions}}' ] || exit 2\n"
DOCKER_ROOTLESS = DOCKER_INFO + "echo '27.3.1 [name=seccomp,profile=builtin name=rootless name=cgroupns]'\n"
DOCKER_ROOTFUL = DOCKER_INFO + "echo '27.3.1 [name=seccomp,profile=builtin name=cgroupns]'\n"
DOCKER_NO_DAEMON = """\
echo 'time="2025-01-01T00:00:00Z" level=warning msg="WARNING: No swap limit support"' >&2
echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2
echo 'Is the docker daemon running?' >&2
exit 1
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH with only the tools the probe uses besides the engines (no podman or docker of this machine)."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("id", "grep", "tr", "cut"):
        found = shutil.which(tool)
        assert found, tool
        (path / tool).symlink_to(found)
    return path


def stub(bin_dir: Path, name: str, body: str) -> Path:
    """An executable stand-in for an engine (or a tool of the NVIDIA toolkit)."""
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def probe(bin_dir: Path, wanted: str = "auto", **kwargs: object) -> dict[str, str]:
    script = engine_probe_script(wanted, **kwargs)
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stderr == ""
    return engine_probe_values(done.stdout.splitlines())


def ids() -> dict[str, str]:
    return {"UID": str(os.getuid()), "GID": str(os.getgid())}


def test_podman_rootless(bin_dir: Path, tmp_path: Path):
    podman = stub(bin_dir, "podman", PODMAN_ROOTLESS)
    assert probe(bin_dir, cdi_dirs=[str(tmp_path / "no-cdi")]) == {
        **ids(),
        "ENGINE": "podman",
        "PATH": str(podman),
        "ROOTLESS": "1",
        "GPU": "0",
    }


def test_podman_rootful_is_not_rootless(bin_dir: Path, tmp_path: Path):
    stub(bin_dir, "podman", PODMAN_ROOTFUL)
    assert probe(bin_dir, "podman", cdi_dirs=[str(tmp_path)])["ROOTLESS"] == "0"


def test_docker_rootless(bin_dir: Path):
    docker = stub(bin_dir, "docker", DOCKER_ROOTLESS)
    assert probe(bin_dir) == {**ids(), "ENGINE": "docker", "PATH": str(docker), "ROOTLESS": "1", "GPU": "0"}


def test_docker_rootful_without_gpu_toolkit(bin_dir: Path):
    docker = stub(bin_dir, "docker", DOCKER_ROOTFUL)
    assert probe(bin_dir, "docker") == {
        **ids(),
        "ENGINE": "docker",
        "PATH": str(docker),
        "ROOTLESS": "0",
        "GPU": "0",
    }


@pytest.mark.parametrize("tool", ["nvidia-container-runtime-hook", "nvidia-ctk"])
def test_docker_with_the_nvidia_toolkit(bin_dir: Path, tool: str):
    stub(bin_dir, "docker", DOCKER_ROOTFUL)
    stub(bin_dir, tool, "exit 0\n")
    assert probe(bin_dir)["GPU"] == "1"


def test_an_engine_that_cannot_be_used_says_why_on_one_line(bin_dir: Path):
    docker = stub(bin_dir, "docker", DOCKER_NO_DAEMON)
    assert probe(bin_dir) == {
        **ids(),
        "ENGINE": "docker",
        "PATH": str(docker),
        # Warnings dropped, lines joined; no ROOTLESS nor GPU.
        "ERROR": "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running? ",
    }


def test_the_error_is_cut_to_400_characters(bin_dir: Path):
    stub(bin_dir, "podman", "printf '%0500d\\n' 0 >&2\nexit 125\n")
    assert probe(bin_dir)["ERROR"] == "0" * 400


def test_no_engine_at_all(bin_dir: Path):
    assert probe(bin_dir) == ids()


def test_auto_takes_podman_before_docker(bin_dir: Path, tmp_path: Path):
    stub(bin_dir, "docker", DOCKER_ROOTFUL)
    stub(bin_dir, "podman", PODMAN_ROOTLESS)
    assert probe(bin_dir, cdi_dirs=[str(tmp_path)])["ENGINE"] == "podman"


def test_an_engine_named_is_the_only_one_looked_for(bin_dir: Path):
    stub(bin_dir, "docker", DOCKER_ROOTFUL)
    assert probe(bin_dir, "podman") == ids()
    assert engine_candidates("auto") == ["podman", "docker"]
    assert engine_candidates("docker") == ["docker"]


def test_podman_gpu_from_a_cdi_spec(bin_dir: Path, tmp_path: Path):
    stub(bin_dir, "podman", PODMAN_ROOTLESS)
    etc, run = tmp_path / "etc cdi", tmp_path / "run-cdi"  # a space: the directories are quoted
    etc.mkdir()
    run.mkdir()
    (etc / "other.json").write_text('{"kind": "example.com/device"}\n')
    (etc / "notes.txt").write_text("kind: nvidia.com/gpu\n")  # neither .yaml nor .json
    assert probe(bin_dir, cdi_dirs=[str(etc), str(run)])["GPU"] == "0"
    (run / "nvidia.yaml").write_text('cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\ndevices:\n- name: all\n')
    assert probe(bin_dir, cdi_dirs=[str(etc), str(run)])["GPU"] == "1"


def test_docker_ignores_cdi_specs(bin_dir: Path, tmp_path: Path):
    stub(bin_dir, "docker", DOCKER_ROOTFUL)
    (tmp_path / "nvidia.yaml").write_text("kind: nvidia.com/gpu\n")
    assert probe(bin_dir, cdi_dirs=[str(tmp_path)])["GPU"] == "0"


def test_the_script_looks_in_the_real_cdi_directories_by_default():
    script = engine_probe_script("auto")
    assert CDI_DIRS == ("/etc/cdi", "/var/run/cdi")
    for spec in ("/etc/cdi/*.yaml", "/etc/cdi/*.json", "/var/run/cdi/*.yaml", "/var/run/cdi/*.json"):
        assert spec in script


def test_the_engine_name_is_quoted(bin_dir: Path):
    docker = stub(bin_dir, "my engine;", DOCKER_ROOTLESS)
    assert probe(bin_dir, "my engine;") == {
        **ids(),
        "ENGINE": "my engine;",
        "PATH": str(docker),
        "ROOTLESS": "0",  # asked as docker is, but rootless is only read from podman and docker
        "GPU": "0",
    }


def test_values_are_read_from_the_name_value_lines_only():
    lines = [
        "Welcome to the host",
        "UID=1000",
        "ERROR=a=b: c\td",
        "lower=x",
        "PATH=/usr/bin/podman",
        "UID=1001",
    ]
    assert engine_probe_values(lines) == {"UID": "1001", "ERROR": "a=b: c\td", "PATH": "/usr/bin/podman"}
