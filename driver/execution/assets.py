"""Where the driver finds its Ansible content and keeps its local state."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shlex
import stat
import sys
import tempfile
from pathlib import Path
from types import ModuleType

_PACKAGE = Path(__file__).resolve().parents[1]  # driver/


# The collection of roles, plugins and playbooks: galaxy.yml's namespace and name.
COLLECTION = ("remote_trainer", "core")


def ansible_home() -> Path:
    """Directory holding ansible.cfg and ansible_collections/: bundled in a wheel, or the source checkout."""
    bundled = _PACKAGE / "_ansible"
    if (bundled / "ansible.cfg").is_file():
        return bundled
    return _PACKAGE.parent


def collections_path() -> Path:
    """The collections path that holds the driver's own copy of the collection (ANSIBLE_COLLECTIONS_PATH)."""
    return ansible_home()


def collection() -> Path:
    """The collection's directory (ansible_collections/remote_trainer/core)."""
    return collections_path().joinpath("ansible_collections", *COLLECTION)


@functools.cache
def plugin_utils(name: str) -> ModuleType:
    """The collection's plugins/plugin_utils/NAME.py, loaded by its path as a module of its own: the rules the
    driver shares with the plugins (job options, the relay's lines). Importing it by its collection name would
    need Ansible's collection loader in the driver's process (and its start time)."""
    path = collection() / "plugins" / "plugin_utils" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"remote_trainer_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def playbook(name: str) -> Path:
    return collection() / "playbooks" / name


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
    from driver.job import contract

    path = state_dir() / "jobs" / contract.check_id(job_id)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


# A socket path is at most 107 bytes: the directory, '/', 40 hex of %C and ssh's 17-byte temp suffix.
_MAX_CP_DIR = 107 - 1 - 40 - 17


def tools_dir() -> Path:
    """A directory holding only links to the Ansible commands installed beside the driver's python.

    Prepended to PATH for ansible-runner, so that the Ansible of the driver's venv runs even when that
    venv is not activated, without also putting the venv's `python3` first for the job itself.
    """
    path = state_dir() / "bin"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    here = Path(sys.executable).parent
    # Drivers started at once on a fresh state directory all write here: each through its own temporary
    # name, renamed over the final one (atomic), so that none sees another's half-made file.
    mine = f".{os.getpid()}.tmp"
    for name in ("ansible-inventory", "ansible-galaxy", "ansible-config"):
        target, link = here / name, path / name
        if target.exists() and (not link.is_symlink() or link.readlink() != target):
            tmp = path / (name + mine)
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            tmp.replace(link)
    target, wrapper = here / "ansible-playbook", path / "ansible-playbook"
    if target.exists():
        text = _PLAYBOOK_WRAPPER.format(target=shlex.quote(str(target)))
        if wrapper.is_symlink() or not wrapper.exists() or wrapper.read_text(encoding="utf-8") != text:
            tmp = path / ("ansible-playbook" + mine)
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o700)
            tmp.replace(wrapper)
    return path


# ansible-runner runs ansible-playbook in its own session, ignoring SIGHUP: a driver killed with SIGKILL,
# or by its terminal closing, would leave it behind, waiting forever. Its parent-death signal ends it
# with the driver (util-linux's setpriv; where there is none, the command runs as it is). The job on the
# hosts goes on, as when the driver is killed: `driver logs -f JOB` reattaches.
_PLAYBOOK_WRAPPER = """#!/bin/sh
if command -v setpriv >/dev/null 2>&1; then
    exec setpriv --pdeathsig TERM -- {target} "$@"
fi
exec {target} "$@"
"""


def control_path_dir(settings: str = "") -> Path:
    """Shared directory of SSH ControlMaster sockets, so that jobs reuse warm connections.

    The state directory when its path is short enough for a Unix socket, else a private directory in
    $XDG_RUNTIME_DIR, else one in /tmp: made with a random name (another user cannot plant it, or a link in
    its place, beforehand) and remembered in the state directory for the next runs. Each is used only while it
    is a directory (not a link) of this user that no one else may enter. `settings` (a mark of what the
    connections authenticate with: driver/execution/sshsettings.py) names a subdirectory, so that a
    connection is reused only while those settings hold.
    """
    state = state_dir()
    # One directory per state directory: drivers of different state directories (users' setups, tests)
    # never share a master connection, which would carry one's authentication over to the other.
    tag = hashlib.sha256(str(state).encode()).hexdigest()[:8]
    candidates = [state / "cp"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _private(Path(runtime), create=False):
        candidates.append(Path(runtime) / f"remote-trainer-cp-{tag}")
    for base in candidates:
        path = base / settings if settings else base
        if len(str(path)) <= _MAX_CP_DIR and _private(base) and (not settings or _private(path)):
            return path
    base = _tmp_control_dir(state)
    path = base / settings if settings else base
    if len(str(path)) <= _MAX_CP_DIR and (not settings or _private(path)):
        return path
    raise RuntimeError("no private directory with a short enough path for SSH control sockets")


def _private(path: Path, create: bool = True) -> bool:
    """Whether path is (made, when create) a real directory of this user, closed to everyone else."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def _tmp_control_dir(state: Path) -> Path:
    """The /tmp directory of this state directory's control sockets: the one remembered, while it is still
    private and ours (a reboot empties /tmp), else a new one with a random name."""
    record = state / "cp-dir"
    try:
        known = Path(record.read_text(encoding="utf-8").strip())
    except OSError:
        known = None
    if (
        known is not None
        and known.parent == Path("/tmp")
        and known.name.startswith("rt-cp-")
        and _private(known, create=False)
    ):
        return known
    made = Path(tempfile.mkdtemp(prefix="rt-cp-", dir="/tmp"))
    tmp = state / f"cp-dir.{os.getpid()}.tmp"
    tmp.write_text(str(made), encoding="utf-8")
    tmp.replace(record)
    return made
