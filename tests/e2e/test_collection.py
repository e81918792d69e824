"""The collection as its users get it: `ansible-galaxy collection build`, the tarball installed into a fresh
collections path, and a playbook of one's own (outside this repository, roles by their FQCN) against a real
sshd host: provision, train, cancel; and --check, which starts nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "ansible_collections" / "remote_trainer" / "core"
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((SOURCE / "galaxy.yml").read_text())

PLAYBOOK = """\
- name: Prepare the hosts
  hosts: all
  gather_facts: false
  roles:
    - role: remote_trainer.core.remote_host

- name: Train
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the training script and show its output
      ansible.builtin.include_role:
        name: remote_trainer.core.training_job
      vars:
        training_job_python: "{{ remote_host_python_path }}"
        training_job:
          id: "{{ job_id }}"
          script: "{{ playbook_dir }}/train.py"
          timeout: 120

- name: Start a long job, then cancel it
  hosts: all
  gather_facts: false
  tasks:
    - name: Start the job and leave it running
      ansible.builtin.include_role:
        name: remote_trainer.core.training_job
      vars:
        training_job_python: "{{ remote_host_python_path }}"
        training_job:
          id: "{{ job_id }}-long"
          script: "{{ playbook_dir }}/long.py"
          detach: true

    - name: Cancel it
      ansible.builtin.include_role:
        name: remote_trainer.core.training_job
        tasks_from: control
      vars:
        training_job:
          id: "{{ job_id }}-long"
          control: kill
          reason: superseded
          grace: 5
"""

TRAIN = """\
import sys
print("hello from", sys.argv[0].rsplit("/", 1)[-1], flush=True)
print("loss=0.5", flush=True)
"""

LONG = """\
import time
print("long job running", flush=True)
time.sleep(300)
"""


def run(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The collection built into a tarball and installed into a fresh collections path (as a user would)."""
    work = tmp_path_factory.mktemp("collection")
    env = user_env(None)
    build = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(SOURCE), "--output-path", str(work)],
        work,
        env,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = work / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert tarball.is_file(), build.stdout
    path = work / "collections"
    install = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(path)], work, env
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (path / "ansible_collections" / "remote_trainer" / "core" / "MANIFEST.json").is_file()
    return path


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A user's project directory: a playbook and two scripts, nothing of this repository."""
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "long.py").write_text(LONG)
    return tmp_path


def user_env(installed: Path | None) -> dict[str, str]:
    """Ansible as a user runs it: no ansible.cfg of this repository, and collections from their collections
    path (the tarball's) and the `ansible` package's alone. Python's path is not scanned: this repository's
    editable install puts its own ansible_collections/ there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    paths = [str(installed)] if installed is not None else []
    env.update(
        ANSIBLE_NOCOLOR="True",
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False",
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([*paths, sysconfig.get_paths()["purelib"]]),
        PATH=f"{BIN}:{os.environ['PATH']}",
    )
    return env


def assert_loaded_from(
    installed: Path, out: str, roles: Iterable[str] = (), playbooks: Iterable[str] = ()
) -> None:
    """Ansible loaded remote_trainer.core (its plugins: the collection's Python package) from the installed
    path alone, and every task of its roles and playbooks from files there (-vvvv's own lines say so)."""
    root = installed / "ansible_collections" / "remote_trainer" / "core"
    loaded = set(re.findall(r"^Loading collection remote_trainer\.core from (.+?)\s*$", out, re.M))
    assert loaded == {str(root)}, f"remote_trainer.core loaded from {loaded or 'nowhere'}, not {root}:\n{out}"
    tasks = {Path(p) for p in re.findall(r"^task path: (.+):\d+\s*$", out, re.M)}
    ours = {p for p in tasks if "remote_trainer" in p.parts or p.is_relative_to(REPO)}
    assert ours and all(p.is_relative_to(root) for p in ours), sorted(map(str, ours - {root}))
    used = {p.relative_to(root).parts[:2] for p in ours}
    assert {("roles", r) for r in roles} | {("playbooks", f"{p}.yml") for p in playbooks} <= used, used


def on_host(testhosts, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(testhosts.ssh_config_path), "th1", command],
        capture_output=True,
        text=True,
        timeout=60,
    )


def job_pids(testhosts, job_id: str) -> list[str]:
    """The processes on th1 whose working directory is the job's (its script: jobctl runs it there)."""
    found = on_host(
        testhosts,
        'for p in /proc/[0-9]*; do [ "$(readlink "$p/cwd" 2>/dev/null)" = '
        f'"$HOME/.remote-trainer/jobs/{job_id}/work" ] && echo "${{p#/proc/}}"; done; true',
    )
    assert found.returncode == 0, found.stderr
    return found.stdout.split()


def test_a_playbook_of_ones_own_provisions_trains_and_cancels_with_the_installed_collection(
    installed, user_dir, testhosts
):
    job_id = f"coll-{uuid.uuid4().hex[:8]}"
    argv = [str(BIN / "ansible-playbook"), "-i", str(testhosts.inventory_path), "--limit", "th1", "site.yml"]
    # -vvvv: Ansible names where it loaded the collection from and the file of every task it runs.
    res = run([*argv, "-vvvv", "-e", f"job_id={job_id}"], user_dir, user_env(installed))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # The roles and plugins came from the installed tarball, not from this repository.
    assert_loaded_from(installed, out, roles={"remote_host", "training_job"})
    # The script's own lines, shown live as plain lines (no driver: no relay records).
    assert "[th1] hello from train.py" in out and "[th1] loss=0.5" in out, out
    assert "@@remote-trainer-relay@@" not in out
    # The long job was started and then cancelled: its reason is recorded and nothing of it still runs.
    assert "[th1] long job running" not in out  # detached: not followed
    assert job_pids(testhosts, f"{job_id}-long") == []
    stopped = on_host(testhosts, f"cat ~/.remote-trainer/jobs/{job_id}-long/.rt/stopped")
    assert stopped.stdout.strip() == "superseded", stopped.stdout + stopped.stderr


def test_check_mode_starts_nothing_and_says_so(installed, user_dir, testhosts):
    job_id = f"coll-check-{uuid.uuid4().hex[:8]}"
    argv = [str(BIN / "ansible-playbook"), "-i", str(testhosts.inventory_path), "--limit", "th1", "site.yml"]
    res = run([*argv, "--check", "-e", f"job_id={job_id}"], user_dir, user_env(installed))
    out = res.stdout + res.stderr
    assert (
        "remote_trainer.core.training_job starts, stops and removes jobs: it does not run in check mode"
        in out
    ), out
    assert "hello from train.py" not in out
    listing = on_host(testhosts, f"ls -d ~/.remote-trainer/jobs/{job_id}* 2>/dev/null || true")
    assert listing.stdout.strip() == "", listing.stdout


def test_the_installed_plugins_are_documented(installed):
    env = user_env(installed)
    for name in ("training_job", "remote_host_check", "remote_host_build"):
        doc = run([str(BIN / "ansible-doc"), f"remote_trainer.core.{name}"], installed, env, timeout=60)
        assert doc.returncode == 0 and re.search(r"check_mode", doc.stdout), doc.stdout + doc.stderr


def test_the_collections_train_playbook_under_check_starts_nothing(installed, tmp_path, testhosts):
    """`ansible-playbook remote_trainer.core.train --check`: the one-step task is skipped, nothing follows."""
    job_id = f"coll-check-{uuid.uuid4().hex[:8]}"
    (tmp_path / "train.py").write_text(TRAIN)
    job = {"training_job": {"id": job_id, "script": str(tmp_path / "train.py")}}
    argv = [str(BIN / "ansible-playbook"), "-i", str(testhosts.inventory_path), "--limit", "th1"]
    argv += ["remote_trainer.core.train", "--check", "-e", json.dumps(job)]
    res = run([*argv, "-vvvv"], tmp_path, user_env(installed))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert_loaded_from(installed, out, playbooks={"train"})
    assert "it does not run in check mode, so this task is skipped" in out, out
    listing = on_host(testhosts, f"ls -d ~/.remote-trainer/jobs/{job_id} 2>/dev/null || true")
    assert listing.stdout.strip() == "", listing.stdout


REUSE = """\
- name: Start a job, then another with the same id
  hosts: all
  gather_facts: false
  tasks:
    - name: Start the first job and leave it running
      ansible.builtin.include_role:
        name: remote_trainer.core.training_job
      vars:
        training_job: {id: "{{ job_id }}", script: "{{ playbook_dir }}/long.py", detach: true}

    - name: Start a second job with the same id
      ansible.builtin.include_role:
        name: remote_trainer.core.training_job
      vars:
        training_job: {id: "{{ job_id }}", script: "{{ playbook_dir }}/train.py"}
"""


def test_an_id_used_twice_is_refused_and_the_running_job_is_kept(installed, user_dir, testhosts):
    job_id = f"coll-twice-{uuid.uuid4().hex[:8]}"
    (user_dir / "twice.yml").write_text(REUSE)
    argv = [str(BIN / "ansible-playbook"), "-i", str(testhosts.inventory_path), "--limit", "th1", "twice.yml"]
    res = run([*argv, "-e", f"job_id={job_id}"], user_dir, user_env(installed))
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f"a job {job_id} already exists on th1" in out, out
    try:
        # The first job's directory and process are untouched.
        assert job_pids(testhosts, job_id), "the first job no longer runs"
        assert on_host(testhosts, f"test -f ~/.remote-trainer/jobs/{job_id}/work/long.py").returncode == 0
    finally:
        pids = job_pids(testhosts, job_id)
        if pids:
            on_host(testhosts, "kill " + " ".join(pids))
