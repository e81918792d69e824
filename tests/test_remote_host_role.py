"""The remote_host role driven by ansible-runner, as the driver drives it: typed failures and the venv key.

Every failure the role reports is one failed event whose result carries the kind as a field:
res.ansible_facts.remote_host_failure == {"kind": ..., "msg": ...}. The local connection (this machine, a
throwaway cache) where that is real enough; sshd test hosts for no python, system packages and rsync.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import hosts as th

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SYSTEM_PYTHON = "/usr/bin/python3"

PLAYBOOK = """\
- name: Provision
  hosts: all
  gather_facts: false
  roles:
    - role: remote_trainer.core.remote_host
"""


@dataclass
class Outcome:
    rc: int
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> res of runner_on_failed
    failed_tasks: dict[str, str] = field(default_factory=dict)  # host -> task_action of that event
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> remote_host_report
    stdout: str = ""


def provision(tmp_path: Path, inventory: Path, **role_vars: Any) -> Outcome:
    """The role on the inventory's hosts with ansible-runner, its variables as extra vars (as the driver)."""
    run_dir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir()
    playbook = run_dir / "provision.yml"
    playbook.write_text(PLAYBOOK)
    runner = ansible_runner.run(
        private_data_dir=str(run_dir),
        playbook=str(playbook),
        inventory=str(inventory),
        extravars=role_vars,
        envvars={
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO),
            "PATH": f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        },
        quiet=True,
        timeout=300,
    )
    out = Outcome(rc=runner.rc, stdout=runner.stdout.read())
    for event in runner.events:
        data = event.get("event_data", {})
        res = data.get("res") or {}
        if event["event"] == "runner_on_failed":
            assert data["host"] not in out.failures, f"a second failure for {data['host']}: {res}"
            out.failures[data["host"]] = res
            out.failed_tasks[data["host"]] = data.get("task_action", "")
        elif event["event"] == "runner_on_ok" and (res.get("ansible_facts") or {}).get("remote_host_report"):
            out.reports[data["host"]] = res["ansible_facts"]["remote_host_report"]
    return out


def failure_of(out: Outcome, host: str) -> dict[str, Any]:
    """The typed failure of the host's one failed event, from a step of the role (no other host failed)."""
    assert out.rc != 0, out.stdout
    assert list(out.failures) == [host], out.stdout
    assert out.failed_tasks[host] in ("ansible.builtin.set_fact", "remote_trainer.core.remote_host_check"), (
        out.failures
    )
    failure = out.failures[host]["ansible_facts"]["remote_host_failure"]
    assert set(failure) == {"kind", "msg"}
    assert "\n" not in failure["msg"]
    return failure


def local_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "local.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={SYSTEM_PYTHON}\n")
    return inventory


def venv_marks(cache: Path) -> tuple[list[str], list[str]]:
    """(venv directories, those marked ready) in a local cache."""
    venvs = sorted(p.name for p in (cache / "venvs").iterdir() if p.is_dir())
    return venvs, [v for v in venvs if (cache / "venvs" / v / ".ready").exists()]


def test_a_failing_requirement_is_kind_requirements_naming_the_package_and_nothing_is_ready(tmp_path):
    cache, empty = tmp_path / "cache", tmp_path / "no-wheels"
    empty.mkdir()
    out = provision(
        tmp_path,
        local_inventory(tmp_path),
        remote_host_python=SYSTEM_PYTHON,
        remote_host_cache_dir=str(cache),
        remote_host_packages=["no-such-package-xyz==1.0"],
        remote_host_find_links=[str(empty)],
        remote_host_no_index=True,
    )
    failure = failure_of(out, "localhost")
    assert failure["kind"] == "requirements"
    # pip's last ERROR: line, without the prefix.
    assert failure["msg"] == (
        "requirements could not be installed on localhost: "
        "No matching distribution found for no-such-package-xyz==1.0"
    )
    venvs, ready = venv_marks(cache)
    assert len(venvs) == 1 and ready == []  # the unfinished venv is there, not marked ready


def test_no_usable_python_is_kind_no_python_naming_what_was_too_old(tmp_path):
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = provision(
        tmp_path,
        local_inventory(tmp_path),
        remote_host_python=SYSTEM_PYTHON,
        remote_host_python_min_version="3.99",
        remote_host_cache_dir=str(tmp_path / "cache"),
    )
    assert failure_of(out, "localhost") == {
        "kind": "no_python",
        "msg": f"no usable python on localhost: looked for {SYSTEM_PYTHON} "
        f"(need 3.99 or newer; too old: {SYSTEM_PYTHON} {version})",
    }


def test_b_a_host_without_python_is_kind_no_python(start_testhosts, tmp_path):
    hs = start_testhosts(1, image=th.IMAGE_NOPYTHON)
    out = provision(tmp_path, hs.inventory_path)
    assert failure_of(out, "th1") == {
        "kind": "no_python",
        "msg": "no usable python on th1: looked for python3.13, python3.12, python3.11, python3.10, "
        "python3.9, python3 (need 3.9 or newer)",
    }


def test_c_comments_and_blank_lines_keep_the_venv(wheelhouse, tmp_path):
    cache = tmp_path / "cache"
    plain = tmp_path / "plain.txt"
    plain.write_text(f"--find-links {wheelhouse}\nsix==1.16.0\n")
    commented = tmp_path / "commented.txt"
    commented.write_text(
        f"# the test's pins\n\n--find-links {wheelhouse}   # local wheels\n\n"
        "  six==1.16.0  # pinned\n   \n# end\n"
    )
    inventory = local_inventory(tmp_path)
    common = {
        "remote_host_python": SYSTEM_PYTHON,
        "remote_host_cache_dir": str(cache),
        "remote_host_no_index": True,
    }

    first = provision(tmp_path, inventory, remote_host_requirements_file=str(plain), **common)
    assert first.rc == 0, first.stdout
    assert first.reports["localhost"]["action"] == "installed"
    second = provision(tmp_path, inventory, remote_host_requirements_file=str(commented), **common)
    assert second.rc == 0, second.stdout
    assert second.reports["localhost"]["action"] == "cached"
    assert second.reports["localhost"]["key"] == first.reports["localhost"]["key"]
    assert second.reports["localhost"]["venv"] == first.reports["localhost"]["venv"]

    venv = Path(first.reports["localhost"]["venv"])
    # The set's requirements file is the normalized text; the option line stays.
    assert Path(f"{venv}.txt").read_text() == f"--find-links {wheelhouse}\nsix==1.16.0\n"
    assert venv_marks(cache) == ([venv.name], [venv.name])
    got = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert got.stdout == "1.16.0\n"

    # Another requirement is another set.
    other = tmp_path / "other.txt"
    other.write_text(commented.read_text() + "iniconfig==2.0.0\n")
    third = provision(tmp_path, inventory, remote_host_requirements_file=str(other), **common)
    assert third.rc == 0, third.stdout
    assert third.reports["localhost"]["action"] == "installed"
    assert third.reports["localhost"]["key"] != first.reports["localhost"]["key"]


def test_missing_system_package_is_kind_system_packages(start_testhosts, tmp_path):
    hs = start_testhosts(1)
    out = provision(
        tmp_path,
        hs.inventory_path,
        remote_host_system_packages=["no-such-pkg-xyz"],
        remote_host_packages=["six==1.16.0"],
    )
    assert failure_of(out, "th1") == {
        "kind": "system_packages",
        "msg": "system packages could not be installed on th1: "
        "No package matching 'no-such-pkg-xyz' is available",
    }


def test_wheelhouse_to_a_host_without_rsync_is_kind_wheelhouse(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    hs.exec("th1", ["rm", "-f", "/usr/bin/rsync"])
    out = provision(
        tmp_path,
        hs.inventory_path,
        remote_host_packages=["six==1.16.0"],
        remote_host_wheelhouse=str(wheelhouse),
        remote_host_no_index=True,
    )
    failure = failure_of(out, "th1")
    assert failure["kind"] == "wheelhouse"
    assert failure["msg"].startswith("the wheelhouse could not be copied to th1: ")
    assert "rsync: command not found" in failure["msg"]
    assert "(rsync exit " in failure["msg"]
