"""`pip install .` gives a driver that works anywhere: the wheel carries the collection, and the installed
driver runs its playbooks from there (not from this checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUNDLED = "driver/_ansible/ansible_collections/remote_trainer/core/"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (found,) = out.glob("remote_trainer-*.whl")
    return found


def test_the_wheel_carries_the_collection(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "driver/_ansible/ansible.cfg",
        BUNDLED + "galaxy.yml",
        BUNDLED + "playbooks/train.yml",
        BUNDLED + "plugins/action/training_job.py",
        BUNDLED + "plugins/plugin_utils/job_options.py",
        BUNDLED + "roles/training_job/files/jobctl.py",
        BUNDLED + "roles/training_job/meta/argument_specs.yml",
    ):
        assert name in names, name
    assert not any("__pycache__" in n for n in names)


def test_the_installed_driver_runs_a_job_from_its_own_copy(wheel, tmp_path):
    """A fresh venv with the wheel (its dependencies from this venv, no checkout on the path) runs a job."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = next(env_dir.glob("lib/python*/site-packages"))
    # The dependencies (Ansible, ansible-runner, click...) from the test's own venv, after the new one's.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    python = env_dir / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import driver.execution.assets as a; print(a.collection())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(site)), where.stdout
    script = tmp_path / "hello.py"
    script.write_text("print('hello from the wheel')\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        "REMOTE_TRAINER_STATE_DIR": str(tmp_path / "state"),
        "PATH": f"{env_dir / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    run = subprocess.run(
        [
            str(python),
            "-c",
            "import sys; from driver.cli import main; sys.exit(main())",
            "train",
            str(script),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == "hello from the wheel\n", run.stdout + run.stderr
