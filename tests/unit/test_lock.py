"""constraints.txt pins the whole dev tree (`make install`, CI, the runner image) within pyproject.toml's
ranges, and the venv these tests run in was installed from it."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "constraints.txt"
TORCH_LOCK = REPO / "testhosts" / "torch-constraints.txt"  # torch's dependencies, for the test hosts
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pins(lock: Path = LOCK) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for number, line in enumerate(lock.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and name and version and " " not in line and ";" not in line, (
            f"{lock.name}:{number}: not an exact pin NAME==VERSION: {line!r}"
        )
        key = canonicalize_name(name)
        assert key not in found, f"{lock.name}:{number}: {name} pinned twice"
        found[key] = Version(version)
    return found


def requirements() -> list[Requirement]:
    listed = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]
    return [Requirement(r) for r in listed]


def test_every_requirement_of_the_project_is_pinned_within_its_range():
    pinned = pins()
    assert canonicalize_name(PROJECT["name"]) not in pinned, "the project itself is not pinned"
    for req in requirements():
        key = canonicalize_name(req.name)
        assert key in pinned, f"{req.name} ({req}) is not in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(pinned[key], prereleases=True), (
            f"{LOCK.name} pins {req.name}=={pinned[key]}, outside pyproject.toml's {req}: run `make lock`"
        )


def test_the_installed_tree_is_the_pinned_one():
    """A venv made before the lock changed (or installed without it) shows here, not as a flaky test later."""
    pinned = pins()
    for req in requirements():
        assert metadata.version(req.name), f"{req.name} is not installed"
    for dist in metadata.distributions():
        key = canonicalize_name(dist.metadata["Name"])
        if key in pinned:
            assert Version(dist.version) == pinned[key], (
                f"{dist.metadata['Name']} {dist.version} is installed, {LOCK.name} pins {pinned[key]}: "
                "run `make install` (or `make lock` to take new releases)"
            )


def test_torchs_dependencies_are_pinned_and_torch_is_not():
    """torch is asked for by version (TORCH_VERSION: a CPU or a CUDA build); what it pulls in is pinned."""
    pinned = pins(TORCH_LOCK)
    assert "torch" not in pinned
    assert {"sympy", "networkx", "filelock"} <= pinned.keys(), sorted(pinned)
