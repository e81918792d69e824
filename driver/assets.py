"""Where the driver finds its Ansible content and keeps its local state."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def ansible_home() -> Path:
    """Directory holding ansible.cfg, playbooks/ and roles/: bundled in a wheel, or the source checkout."""
    bundled = _PACKAGE / "_ansible"
    if (bundled / "ansible.cfg").is_file():
        return bundled
    return _PACKAGE.parent


def playbook(name: str) -> Path:
    return ansible_home() / "playbooks" / name


def ansible_cfg() -> Path:
    return ansible_home() / "ansible.cfg"


def state_dir() -> Path:
    """Local state: $REMOTE_TRAINER_STATE_DIR, else $XDG_STATE_HOME/remote-trainer, else ~/.local/state/..."""
    explicit = os.environ.get("REMOTE_TRAINER_STATE_DIR")
    if explicit:
        base = Path(explicit)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "remote-trainer"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def job_dir(job_id: str) -> Path:
    """Private local directory of one job: its runner artifacts, relayed logs and record."""
    path = state_dir() / "jobs" / job_id
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def control_path_dir() -> Path:
    """Shared directory of SSH ControlMaster sockets, so that jobs reuse warm connections."""
    path = state_dir() / "cp"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
