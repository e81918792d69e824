"""What an SSH connection was made with, as one short mark: warm connections are reused only while it holds.

The driver keeps SSH connections open between commands (ControlPersist) so that the next command starts
warm. A master connection was authenticated once, with the user, key and known_hosts of that moment; reused,
it would hide a changed known_hosts, user or key for as long as it lives. So the sockets live in a directory
named after a mark of everything the authentication depends on, and any change to it means new connections
that verify and authenticate again: the inventory (its files, or the host list itself) with the
group_vars/host_vars Ansible reads beside it, every file the inventory names (UserKnownHostsFile,
IdentityFile, ansible_ssh_private_key_file, ...), the user's and the system's ssh configuration and
known_hosts, the environment that changes Ansible's SSH settings, and whether new host keys are accepted.
Files count by their metadata (size, modification time, inode), never their content: no key is read.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

# The ssh client's own configuration and known hosts (its defaults).
SSH_FILES = (
    "~/.ssh/config",
    "~/.ssh/known_hosts",
    "~/.ssh/known_hosts2",
    "/etc/ssh/ssh_config",
    "/etc/ssh/ssh_known_hosts",
    "/etc/ssh/ssh_known_hosts2",
)
SSH_DIRS = ("/etc/ssh/ssh_config.d",)
# Environment variables by which Ansible's connection settings change (user, key, ssh arguments).
ENV_PREFIXES = ("ANSIBLE_SSH_", "ANSIBLE_REMOTE_", "ANSIBLE_PRIVATE_KEY", "ANSIBLE_HOST_KEY", "ANSIBLE_USER")
# Absolute or ~ paths named in an inventory (a key file, a known_hosts file, a config file).
_PATH = re.compile(r"""(?:^|[\s=:'"])((?:~|/)[^\s'",]+)""")
_MAX_FILES = 500


def mark(inventory: str | None, accept_new_host_keys: bool = False) -> str:
    """A short mark of the SSH settings a playbook run over `inventory` connects with."""
    digest = hashlib.sha256()
    digest.update(b"accept-new\0" if accept_new_host_keys else b"strict\0")
    for name in sorted(os.environ):
        if name.startswith(ENV_PREFIXES):
            digest.update(f"{name}={os.environ[name]}\0".encode())
    named: list[str] = []
    if inventory and "," in inventory and not os.path.exists(inventory):
        digest.update(inventory.encode() + b"\0")  # host1,host2, : the list is the inventory
    elif inventory:
        for path in _inventory_files(Path(inventory)):
            _add_file(digest, path)
            named += _named_paths(path)
    for path in [*SSH_FILES, *named]:
        _add_file(digest, Path(os.path.expanduser(path)))
    for directory in SSH_DIRS:
        for path in _files_under(Path(directory)):
            _add_file(digest, path)
    return digest.hexdigest()[:8]


def _inventory_files(inventory: Path) -> list[Path]:
    """The inventory's own files, and the group_vars/ and host_vars/ Ansible reads beside (or in) it."""
    base = inventory if inventory.is_dir() else inventory.parent
    files = [inventory] if inventory.is_file() else list(_files_under(inventory))
    for extra in ("group_vars", "host_vars"):
        files += [p for p in _files_under(base / extra) if p not in files]
    return files


def _files_under(directory: Path) -> Iterable[Path]:
    if not directory.is_dir():
        return []
    found = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        found += [Path(root) / n for n in sorted(names)]
        if len(found) > _MAX_FILES:
            break
    return found[:_MAX_FILES]


def _named_paths(path: Path) -> list[str]:
    """Paths an inventory file names (bounded: a huge file is not read whole)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return []
    return sorted(set(_PATH.findall(text)))[:_MAX_FILES]


def _add_file(digest: hashlib._Hash, path: Path) -> None:
    try:
        st = path.stat()
    except OSError:
        digest.update(f"{path}:-\0".encode())
        return
    digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\0".encode())
