"""The one place that talks to ansible-runner: run a playbook of ours in-process and hand over its events."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from driver.execution import assets, sshsettings

EventHandler = Callable[[dict[str, Any]], bool]

# ansible-runner runs ansible-playbook under pexpect, whose pty sleeps `delayafterclose` (0.1 s) on close,
# after the output has ended: a tenth of every launch of a no-op job. By then the process has exited
# (its pty reached EOF when its last descriptor closed, at exit); the pty still checks that it did.
PTY_CLOSE_DELAY = 0.01


# pexpect keeps everything its child printed since the last match in `_before`; ansible-runner's patterns
# (EOF, TIMEOUT) never match while ansible-playbook runs, so that buffer held the whole run's output, every
# relayed byte included (twice base64-encoded), and was copied whole at each 1 s timeout: a job's output
# grew the driver's memory without bound. Only the last PEXPECT_KEEP characters are kept (ansible-runner
# reads the output through logfile_read, and searches the last 100 characters for a password prompt).
PEXPECT_KEEP = 64 * 1024


def _recent(buffer_type: type) -> type:
    """buffer_type (StringIO or BytesIO) keeping only its last PEXPECT_KEEP characters, written at its end."""

    class Recent(buffer_type):  # type: ignore[misc, valid-type]
        def write(self, data: Any) -> int:
            if self.tell() > 16 * PEXPECT_KEEP:
                tail = self.getvalue()[-PEXPECT_KEEP:]
                self.seek(0)
                self.truncate()
                super().write(tail)
            return super().write(data)

    return Recent


def _prompt_pty_close() -> None:
    """Make the ptys that pexpect spawns in this process wait PTY_CLOSE_DELAY on close, and keep their
    buffers bounded (see above)."""
    import pexpect

    spawnpty = getattr(pexpect.spawn, "_spawnpty", None)
    if spawnpty is None or getattr(spawnpty, "prompt_close", False):
        return

    def prompt_spawnpty(self: Any, args: Any, **kwargs: Any) -> Any:
        proc = spawnpty(self, args, **kwargs)
        if hasattr(proc, "delayafterclose"):
            proc.delayafterclose = PTY_CLOSE_DELAY
        # pexpect reads 2,000 characters at a time (and sleeps 0.1 ms after each): relaying 128 MiB took
        # 62 s; 64 KiB a read takes that to 19 s.
        self.maxread = 1 << 16
        if hasattr(self, "buffer_type") and hasattr(self, "_before"):
            self.buffer_type = _recent(self.buffer_type)
            self._before = self.buffer_type()
            self._buffer = self.buffer_type()
        return proc

    prompt_spawnpty.prompt_close = True  # type: ignore[attr-defined]
    pexpect.spawn._spawnpty = prompt_spawnpty


_prompt_pty_close()


@dataclass
class PlaybookRun:
    thread: threading.Thread
    runner: Any
    vars_file: Path | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    @property
    def status(self) -> str:
        return str(self.runner.status)

    @property
    def rc(self) -> int | None:
        return self.runner.rc

    def scrub_artifacts(self) -> None:
        """Drop what ansible-playbook no longer needs: the environment in artifacts/<ident>/command, and the
        extra vars file once it was read (see start())."""
        scrub_command(Path(self.runner.config.artifact_dir) / "command")
        self.drop_vars()

    def drop_vars(self) -> None:
        """Remove the extra vars file (an index URL may hold a token): once read, or at the end."""
        if self.vars_file is not None:
            self.vars_file.unlink(missing_ok=True)
            self.vars_file = None

    def terminate(self) -> None:
        """SIGTERM ansible-playbook (never SIGKILL: it must reap its detached workers and their ssh)."""
        for pid in _children(os.getpid()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"ansible-playbook" in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)


# Ansible's default collections path, searched after the driver's own copy (collections a user's inventory
# plugins need); the `ansible` package's collections are found on Python's path whatever this holds.
_COLLECTIONS_PATH = "~/.ansible/collections:/usr/share/ansible/collections"


def scrub_command(path: Path) -> None:
    """Keep only the names of the environment that ansible-runner copies into artifacts/<ident>/command.

    It is the driver's whole environment, where users keep tokens (and `--env K` takes its value from it).
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(record.get("env"), dict):
        record["env"] = sorted(record["env"])
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        tmp.replace(path)


class _UnsafeDumper(yaml.SafeDumper):
    """Writes every string as Ansible's `!unsafe`: a value is data, never a template to evaluate."""


def _unsafe_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", value, style='"')


def _plain_keys(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.Node:
    """A mapping whose keys (variable names) stay plain strings; only the values are marked."""
    items = [
        (dumper.represent_scalar("tag:yaml.org,2002:str", str(k)), dumper.represent_data(v))
        for k, v in data.items()
    ]
    return yaml.MappingNode("tag:yaml.org,2002:map", items)


_UnsafeDumper.add_representer(str, _unsafe_str)
_UnsafeDumper.add_representer(dict, _plain_keys)
_UnsafeDumper.add_representer(tuple, lambda dumper, value: dumper.represent_list(list(value)))


def write_vars(directory: Path, extravars: dict[str, Any]) -> Path:
    """The extra vars as a private file (0600) for `-e @FILE`, every string marked `!unsafe`.

    Not on ansible-playbook's command line (every local user reads it in /proc) nor in ansible-runner's
    env/extravars (kept after the run): an index URL may hold a token. Marked unsafe, a path or value that
    contains `{{ ... }}` is never evaluated as Jinja on this machine.
    """
    fd, name = tempfile.mkstemp(prefix="vars-", suffix=".yml", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.dump(extravars, f, Dumper=_UnsafeDumper, allow_unicode=False, default_flow_style=False)
    return Path(name)


def ssh_args(accept_new_host_keys: bool) -> str | None:
    """ANSIBLE_SSH_ARGS for a run: None leaves the user's (or the driver's ansible.cfg) as they are.

    Accepting new host keys adds to those arguments, first (the first value of an ssh option wins).
    """
    if not accept_new_host_keys:
        return None
    base = os.environ.get("ANSIBLE_SSH_ARGS")
    if base is None:
        cfg = configparser.RawConfigParser()
        cfg.read(assets.ansible_cfg(), encoding="utf-8")
        base = cfg.get("ssh_connection", "ssh_args", fallback="")
    return "-o StrictHostKeyChecking=accept-new" + (" " + base if base.strip() else "")


def base_envvars(inventory: str | None = None, accept_new_host_keys: bool = False) -> dict[str, str]:
    """Environment of every ansible-playbook the driver starts (over `inventory`)."""
    settings = sshsettings.mark(inventory, accept_new_host_keys)
    env = {
        "ANSIBLE_CONFIG": str(assets.ansible_cfg()),
        # ansible-runner turns host key checking off unless told otherwise: keep it on.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # Warm connections are reused only while what they authenticated with holds.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(assets.control_path_dir(settings)),
        # The driver's own copy of the collection first: the one its playbooks and contract were made with.
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
            [str(assets.collections_path()), os.environ.get("ANSIBLE_COLLECTIONS_PATH", _COLLECTIONS_PATH)]
        ),
        "ANSIBLE_NOCOLOR": "True",
        # An inventory that does not parse is an error, not an empty inventory.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        # The Ansible installed beside the driver's python wins, even when its venv is not on PATH.
        "PATH": os.pathsep.join([str(assets.tools_dir()), os.environ.get("PATH", os.defpath)]),
    }
    args = ssh_args(accept_new_host_keys)
    if args is not None:
        env["ANSIBLE_SSH_ARGS"] = args
    return env


def start(
    playbook: str,
    *,
    private_data_dir: Path,
    inventory: str,
    extravars: dict[str, Any],
    event_handler: EventHandler,
    limit: str | None = None,
    forks: int | None = None,
    accept_new_host_keys: bool = False,
    ssh_inventory: str | None = None,
) -> PlaybookRun:
    """Start the collection's playbooks/<playbook> on a thread; the caller keeps its signal handlers.

    ssh_inventory: the user's inventory whose SSH settings mark the warm connections (None: this machine).
    """
    # The collection's plugins tell the driver what happens as relay records (events.py reads them).
    vars_file = write_vars(private_data_dir, {**extravars, "remote_trainer_relay": "records"})
    run = PlaybookRun(threading.Thread(), None, vars_file)

    def on_event(event: dict[str, Any]) -> bool:
        # Ansible's callback speaks once ansible-playbook has read the extra vars: the file can go.
        if event.get("event") not in (None, "verbose"):
            run.drop_vars()
        return event_handler(event)

    def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
        # `running`: ansible-runner has just written artifacts/<ident>/command, ansible-playbook is not
        # started yet; a driver killed from here on leaves no environment value on disk.
        if data.get("status") == "running" and runner_config is not None:
            scrub_command(Path(runner_config.artifact_dir) / "command")

    try:
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(private_data_dir),
            playbook=str(assets.playbook(playbook)),
            inventory=[inventory],
            limit=limit,
            forks=forks,
            extravars=str(vars_file),
            envvars=base_envvars(ssh_inventory, accept_new_host_keys),
            # No env/ files: ansible-runner would keep the extra vars and environment there for good.
            suppress_env_files=True,
            event_handler=on_event,
            status_handler=on_status,
            # Our own callback keeps ansible-runner from taking over SIGINT/SIGTERM; cancelling is ours.
            cancel_callback=lambda: False,
            settings={"suppress_output_file": True, "pexpect_timeout": 1},
            quiet=True,
            ident="run",
        )
    except BaseException:
        run.drop_vars()
        raise
    run.thread, run.runner = thread, runner
    return run


def _children(ppid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == ppid:
            found.append(int(name))
    return found
