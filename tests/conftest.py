"""Shared fixtures: real SSH test hosts (podman containers, see testhosts/hosts.py).

- ``testhosts``: 2 hosts (th1, th2) for the whole session, removed at the end.
  ``REMOTE_TRAINER_TESTHOSTS=<state dir>`` reuses hosts started by
  ``python3 testhosts/hosts.py up N <state dir>`` instead (left running).
- ``start_testhosts(n, image=..., **kw)``: more hosts, e.g. without python
  (``IMAGE_NOPYTHON``); each set is removed at session end, or earlier by ``hs.stop()``.

Tests using either fixture are marked ``e2e`` automatically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testhosts"))

import hosts as th  # testhosts/ is not an installed package

HOST_FIXTURES = {"testhosts", "start_testhosts"}


def pytest_configure(config: pytest.Config) -> None:
    if not any(line.startswith("e2e:") for line in config.getini("markers")):
        config.addinivalue_line("markers", "e2e: drives real sshd test hosts (podman containers)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HOST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def testhost_label() -> str:
    """Prefix of this session's container labels and names."""
    return f"rt-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def testhost_images() -> None:
    """Build the host images when missing or out of date (~0.1 s when current)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `bash .ci/setup-podman.sh` as root (or `bash .ci/run`)")
    th.build_images()


@pytest.fixture(scope="session")
def testhosts(testhost_images, testhost_label, tmp_path_factory) -> Iterator[th.HostSet]:
    reuse = os.environ.get("REMOTE_TRAINER_TESTHOSTS")
    if reuse:
        yield th.HostSet.load(reuse)
        return
    hs = th.start_hosts(2, tmp_path_factory.mktemp("testhosts"), label=testhost_label)
    try:
        yield hs
    finally:
        hs.stop()


@pytest.fixture(scope="session")
def start_testhosts(testhost_images, testhost_label, tmp_path_factory) -> Iterator[Callable[..., th.HostSet]]:
    """Factory: ``start_testhosts(n=1, image=th.IMAGE, extra_run_args=()) -> HostSet``."""
    started: list[th.HostSet] = []

    def start(n: int = 1, image: str = th.IMAGE, **kwargs) -> th.HostSet:
        label = f"{testhost_label}-x{len(started) + 1}"
        hs = th.start_hosts(n, tmp_path_factory.mktemp("testhosts-x"), image=image, label=label, **kwargs)
        started.append(hs)
        return hs

    yield start
    errors = []
    for hs in started:
        try:
            hs.stop()
        except Exception as exc:  # remove the other sets anyway
            errors.append(exc)
    if errors:
        raise errors[0]


WHEELHOUSE = Path(__file__).resolve().parents[1] / ".state" / "wheelhouse"


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Local wheels of small real packages (six, iniconfig), downloaded by `make wheelhouse`."""
    wheels = sorted(p.name for p in WHEELHOUSE.glob("*.whl")) if WHEELHOUSE.is_dir() else []
    if not any(w.startswith("six-") for w in wheels) or not any(w.startswith("iniconfig-") for w in wheels):
        pytest.fail(f"the test wheelhouse {WHEELHOUSE} is incomplete: run `make wheelhouse`")
    return WHEELHOUSE


# Made by `make wheelhouse` outside the clone (the Makefile exports the path it used).
TORCH_WHEELHOUSE = Path(
    os.environ.get("TORCH_WHEELHOUSE")
    or Path.home() / ".cache" / "remote-trainer" / "torch-wheelhouse" / "torch-2.13.0-cp311"
)


@pytest.fixture(scope="session")
def torch_wheelhouse() -> Path:
    """PyTorch (CPU build where pip had one, else PyPI's CUDA build) and its dependencies for the hosts."""
    if not any(TORCH_WHEELHOUSE.glob("torch-*.whl")):
        pytest.fail(f"no torch wheel in {TORCH_WHEELHOUSE}: run `make wheelhouse`")
    return TORCH_WHEELHOUSE


@pytest.fixture(scope="module")
def cluster(start_testhosts, tmp_path_factory):
    """Two hosts that reach each other; the inventory tells every rank the master's bridge address."""
    hs = start_testhosts(2)
    inventory = tmp_path_factory.mktemp("cluster") / "inventory.ini"
    master = hs.container_ip("th1")
    inventory.write_text(
        hs.inventory_path.read_text().replace(
            "ansible_user=trainer", f"ansible_user=trainer train_master_addr={master}"
        )
    )
    return hs, inventory


# The runner image of the remote runtime (Containerfile), for tests that run it like the runtime's pod.
REPO_ROOT = Path(__file__).resolve().parents[1]
BASE = "localhost/debian-min:bookworm"
SOURCES = [
    "Containerfile",
    ".containerignore",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    "ansible.cfg",
    "driver",
    "ansible_collections",
    "runner",
]


def content_tag() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        path = REPO_ROOT / name
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
        for f in files:
            digest.update(str(f.relative_to(REPO_ROOT)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def runner_image(testhost_images) -> str:
    image = f"localhost/remote-trainer-runner:{content_tag()}"
    if th._podman("image", "exists", image, check=False).returncode != 0:
        # One runner image per content: the images of earlier contents (~0.8 GB each) go first.
        listed = th._podman(
            "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/remote-trainer-runner", check=False
        )
        stale = [ref for ref in listed.stdout.split() if ref != image]
        if stale:
            th._podman("rmi", *stale, check=False)
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
            cwd=REPO_ROOT,
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
        f"{REPO_ROOT / 'tests' / 'scripts'}:/job:ro",
    ]
