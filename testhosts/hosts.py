"""SSH test hosts for remote-trainer: podman containers reached over real SSH.

Each host is a container of the image built by ``testhosts/build-image.sh``
(sshd in the foreground, user ``trainer`` with passwordless sudo), published on
``127.0.0.1:<random port>``. Host keys are *verified*: ``known_hosts`` is built
from each container's own host key, and every generated config uses
``StrictHostKeyChecking=yes``.

Library (stdlib only)::

    from hosts import start_hosts
    hs = start_hosts(2, tmp_path)          # th1, th2
    hs.ssh("th1", "echo hi").stdout        # 'hi\\n'
    hs.drop_ssh("th1")                     # every sshd killed; the host keeps running
    hs.resume_ssh("th1")                   # sshd back: same port, same host key
    hs.block_network("th1")                # packets to sshd dropped (a sleeping laptop); unblock_network
    hs.restart_container("th1")            # a reboot: every process of the host dies
    hs.stop()

CLI (for working by hand)::

    python3 testhosts/hosts.py up 2 /tmp/th     # then: ssh -F /tmp/th/ssh_config th1
    python3 testhosts/hosts.py drop-ssh /tmp/th th1   # resume-ssh: back again
    python3 testhosts/hosts.py down /tmp/th

Files written to ``state_dir``: ``id_ed25519`` (+ ``.pub``), ``known_hosts``,
``ssh_config``, ``inventory.ini`` and ``hosts.json`` (label, ports, containers).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

IMAGE = "localhost/remote-trainer-testhost:bookworm"
IMAGE_NOPYTHON = "localhost/remote-trainer-testhost-nopython:bookworm"
# A host with rootless podman for trainer (start it with extra_run_args=PODMAN_RUN_ARGS), and an image for
# container jobs (python3, no entrypoint).
IMAGE_PODMAN = "localhost/remote-trainer-testhost-podman:bookworm"
PODMAN_RUN_ARGS = ("--privileged",)
IMAGE_DOCKER = "localhost/remote-trainer-testhost-docker:bookworm"  # dockerd inside; run with PODMAN_RUN_ARGS
IMAGE_JOB = "localhost/remote-trainer-job-python:bookworm"
LABEL_KEY = "remote-trainer-testhost"
USER = "trainer"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_SCRIPT = Path(__file__).resolve().parent / "build-image.sh"
READY_TIMEOUT = 60.0
STATE_FILE = "hosts.json"
# Written by the image's entrypoint (testhosts/image/entrypoint.sh), the sshd supervisor.
SSHD_PAUSE_FILE = "/run/sshd.paused"
SUPERVISOR_PID_FILE = "/run/testhost-supervisor.pid"

# drop_ssh, run as root in the container: no new sshd, then SIGKILL every sshd (the
# listener and each connection's privileged and user processes) until none is left.
_DROP_SSH_SH = f"""
set -eu
if [ ! -s {SUPERVISOR_PID_FILE} ]; then
    echo "no sshd supervisor in this container (image older than drop_ssh?): run build-image.sh" >&2
    exit 3
fi
touch {SSHD_PAUSE_FILE}
i=0
while pgrep -x sshd >/dev/null; do
    pkill -KILL -x sshd || true
    i=$((i + 1))
    if [ "$i" -ge 250 ]; then echo "sshd still running after 5 s" >&2; exit 1; fi
    sleep 0.02
done
"""
# resume_ssh: lift the pause and wake the supervisor (it would poll within 1 s anyway).
_RESUME_SSH_SH = f"""
rm -f {SSHD_PAUSE_FILE}
kill -USR1 "$(cat {SUPERVISOR_PID_FILE})" 2>/dev/null || true
"""

__all__ = [
    "IMAGE",
    "IMAGE_NOPYTHON",
    "LABEL_KEY",
    "CommandError",
    "Host",
    "HostSet",
    "TestHostError",
    "build_images",
    "start_hosts",
    "stop_all",
]


class TestHostError(RuntimeError):
    """A test host could not be started, reached or stopped."""

    __test__ = False  # not a pytest test class


class CommandError(subprocess.CalledProcessError):
    """A command failed; unlike CalledProcessError, its message shows stderr."""

    def __str__(self) -> str:
        err = (self.stderr or "").strip()
        tail = "\n".join(err.splitlines()[-20:])
        return f"{super().__str__()}\nstderr:\n{tail}" if tail else super().__str__()


@dataclasses.dataclass(frozen=True)
class Host:
    name: str  # th1 ... thN: ssh_config Host alias and inventory name
    container: str  # podman container name
    port: int  # published port on 127.0.0.1
    host_key: str  # "ssh-ed25519 AAAA..." as read from the container


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float | None = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def _podman(*args: str, check: bool = True, timeout: float | None = 60) -> subprocess.CompletedProcess[str]:
    return _run(["podman", *args], check=check, timeout=timeout)


def build_images() -> None:
    """Build the host images if missing or out of date (idempotent, ~0.1 s when current)."""
    proc = subprocess.run([str(BUILD_SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TestHostError(f"{BUILD_SCRIPT} failed (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}")


def stop_all(label: str) -> list[str]:
    """Remove every container carrying ``remote-trainer-testhost=<label>``; return their IDs."""
    if not label:
        raise ValueError("stop_all needs a label: other sessions' hosts must survive")
    ids = _podman("ps", "-aq", "--filter", f"label={LABEL_KEY}={label}").stdout.split()
    if ids:
        _podman("rm", "-f", "-t", "0", *ids, timeout=120)
    return ids


class HostSet:
    """Hosts started by :func:`start_hosts` (or reloaded with :meth:`load`)."""

    def __init__(self, state_dir: Path, label: str, image: str, hosts: Iterable[Host]):
        self.state_dir = Path(state_dir).resolve()
        self.label = label
        self.image = image
        self.hosts: dict[str, Host] = {h.name: h for h in hosts}

    # -- paths -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.hosts)

    @property
    def key_path(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def public_key_path(self) -> Path:
        return self.state_dir / "id_ed25519.pub"

    @property
    def known_hosts_path(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.ini"

    def port(self, name: str) -> int:
        return self.hosts[name].port

    def container(self, name: str) -> str:
        return self.hosts[name].container

    def __repr__(self) -> str:
        return f"HostSet(label={self.label!r}, hosts={self.names}, state_dir='{self.state_dir}')"

    def __enter__(self) -> HostSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- commands ----------------------------------------------------------------
    def container_ip(self, name: str) -> str:
        """The host's address on the podman network (how other containers reach it)."""
        return _podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", self.container(name)).stdout.strip()

    def ssh_argv(self, name: str, *args: str) -> list[str]:
        """``ssh -F <state>/ssh_config NAME ARGS...`` (for Popen, rsync -e, ...)."""
        self.hosts[name]  # KeyError for unknown names
        return ["ssh", "-F", str(self.ssh_config_path), name, *args]

    def ssh(
        self,
        name: str,
        command: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (a shell string, or an argv that gets quoted) as trainer over SSH."""
        if not isinstance(command, str):
            command = shlex.join(command)
        return _run(self.ssh_argv(name, command), check=check, timeout=timeout, input=input)

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        check: bool = True,
        timeout: float | None = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``podman exec`` (no SSH; root unless ``user``): for setup and inspection."""
        opts = ["--user", user] if user else []
        return _podman("exec", *opts, self.container(name), *argv, check=check, timeout=timeout)

    def pids_matching(self, name: str, pattern: str) -> list[int]:
        """PIDs on host ``name`` whose command line matches regex ``pattern`` (``ps -eo pid,args``)."""
        ps_argv = "ps -eo pid=,args="
        out = self.ssh(name, ps_argv).stdout
        rx = re.compile(pattern)
        pids = []
        for line in out.splitlines():
            pid, _, args = line.strip().partition(" ")
            args = args.strip()
            if args != ps_argv and rx.search(args):
                pids.append(int(pid))
        return pids

    # -- lifecycle ---------------------------------------------------------------
    def drop_ssh(self, name: str) -> None:
        """Cut host ``name`` off SSH while it keeps running: every sshd process dies.

        The listener and all per-connection sshd processes are SIGKILLed, so open
        sessions and ControlMaster connections break (the client sees EOF / exit 255)
        and new connections are refused until :meth:`resume_ssh`. Everything else on
        the host keeps running: processes detached from their session (``setsid``,
        ``nohup ... &`` with redirected output) survive; orphans are reaped by the
        container's init (``podman run --init``). Processes still attached to a
        killed session get the usual SIGHUP / EPIPE, as on a real host.
        """
        self.exec(name, ["sh", "-c", _DROP_SSH_SH])

    def resume_ssh(self, name: str, wait: bool = True) -> None:
        """Undo :meth:`drop_ssh`: sshd starts again (same port, same host key, so
        ``known_hosts`` stays valid); with ``wait``, return once ``ssh NAME true`` works."""
        self.exec(name, ["sh", "-c", _RESUME_SSH_SH])
        if wait:
            _wait_for_ssh(self, name, time.monotonic() + READY_TIMEOUT)

    def block_network(self, name: str) -> None:
        """Cut host ``name`` off the network as a sleeping laptop or a dead link does: every packet to its
        sshd is dropped (no reset, no refusal), open connections hang, the host and its jobs run on.

        A DROP rule in the container's own network namespace (``nsenter`` + this machine's iptables),
        so nothing of this machine's firewall changes; :meth:`unblock_network` removes it."""
        self._netns_iptables(name, "-I")

    def unblock_network(self, name: str) -> None:
        """Undo :meth:`block_network` (idempotent)."""
        while self._netns_iptables(name, "-D", check=False).returncode == 0:
            pass

    def _netns_iptables(self, name: str, op: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        pid = _podman("inspect", "-f", "{{.State.Pid}}", self.container(name)).stdout.strip()
        rule = ["INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"]
        return _run(["nsenter", "-t", pid, "-n", "iptables", "-w", op, *rule], check=check, timeout=30)

    def restart_container(self, name: str) -> None:
        """Reboot host ``name``: every process dies (SIGKILL), then it comes back (same port and host key)."""
        self.stop_container(name)
        self.start_container(name)

    def stop_container(self, name: str, timeout: int = 0) -> None:
        """Take host ``name`` down (``podman stop``); its processes die with it."""
        _podman("stop", "-t", str(timeout), self.container(name), timeout=timeout + 60)

    def start_container(self, name: str, wait: bool = True) -> None:
        """Bring a stopped host back (same port, same host key); wait until SSH works."""
        _podman("start", self.container(name))
        if wait:
            _wait_for_ssh(self, name, time.monotonic() + READY_TIMEOUT)

    def stop(self) -> None:
        """Remove this set's containers (by label). The state dir is left for post-mortems."""
        stop_all(self.label)

    # -- persistence -------------------------------------------------------------
    def _save(self) -> None:
        data = {
            "label": self.label,
            "image": self.image,
            "hosts": [dataclasses.asdict(h) for h in self.hosts.values()],
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> HostSet:
        """Reattach to hosts started earlier (``hosts.py up``) from their state dir."""
        data = json.loads((Path(state_dir) / STATE_FILE).read_text())
        return cls(Path(state_dir), data["label"], data["image"], [Host(**h) for h in data["hosts"]])


# -- starting ----------------------------------------------------------------------
def _keypair(state_dir: Path) -> str:
    key = state_dir / "id_ed25519"
    if not key.exists():
        _run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "remote-trainer-testhosts", "-f", str(key)]
        )
    key.chmod(0o600)
    return (state_dir / "id_ed25519.pub").read_text().strip()


def _run_container(
    name: str, container: str, label: str, image: str, pubkey: str, extra_run_args: Sequence[str]
) -> int:
    argv = [
        "run",
        "-d",
        "--name",
        container,
        "--hostname",
        name,
        "--label",
        f"{LABEL_KEY}={label}",
        # catatonit as PID 1: reaps orphans and forwards signals to the entrypoint,
        # whose sshd supervisor can then stop and restart sshd (drop_ssh/resume_ssh).
        "--init",
        "-p",
        "127.0.0.1::22",
        "-e",
        f"AUTHORIZED_KEY={pubkey}",
    ]
    if os.path.exists(CA_BUNDLE):
        argv += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    for attempt in range(3):
        try:
            _podman(*argv, *extra_run_args, image, timeout=120)
            break
        except CommandError as exc:
            # Many hosts started at once: podman may pick a free port that another start takes first.
            if "address already in use" not in (exc.stderr or "") or attempt == 2:
                raise
            _podman("rm", "-f", "-t", "0", container, check=False)
    out = _podman("port", container, "22/tcp").stdout.strip()  # "127.0.0.1:41234"
    return int(out.splitlines()[0].rpartition(":")[2])


def _read_host_key(container: str, deadline: float) -> str:
    """The container's ed25519 host key; the entrypoint creates it at first start."""
    path = "/etc/ssh/ssh_host_ed25519_key.pub"
    while True:
        proc = _podman("exec", container, "cat", path, check=False)
        fields = proc.stdout.split()
        if proc.returncode == 0 and len(fields) >= 2 and fields[0] == "ssh-ed25519":
            return f"{fields[0]} {fields[1]}"
        if time.monotonic() > deadline:
            raise TestHostError(
                f"{container}: no host key after {READY_TIMEOUT:.0f} s: "
                f"{proc.stderr.strip()}\n{_logs(container)}"
            )
        time.sleep(0.1)


def _wait_for_ssh(hs: HostSet, name: str, deadline: float) -> None:
    """Until ``ssh NAME true`` works, with strict host key checking."""
    while True:
        try:
            proc = hs.ssh(name, "true", check=False, timeout=15)
            if proc.returncode == 0:
                return
            why = f"rc {proc.returncode}: {proc.stderr.strip()}"
            # sshd starts only after the entrypoint wrote both keys: these never heal.
            final = any(m in proc.stderr for m in ("Permission denied", "Host key verification failed"))
        except subprocess.TimeoutExpired:
            why, final = "ssh hung for 15 s", False
        if final or time.monotonic() > deadline:
            raise TestHostError(f"{name}: ssh not working ({why})\n{_logs(hs.container(name))}")
        time.sleep(0.1)


def _logs(container: str) -> str:
    proc = _podman("logs", "--tail", "20", container, check=False)
    return f"podman logs {container}:\n{proc.stdout}{proc.stderr}"


def _write_files(hs: HostSet) -> None:
    d = hs.state_dir
    known_hosts = "".join(f"[127.0.0.1]:{h.port} {h.host_key}\n" for h in hs.hosts.values())
    hs.known_hosts_path.write_text(known_hosts)

    blocks = []
    for h in hs.hosts.values():
        blocks.append(
            f"Host {h.name}\n"
            f"    HostName 127.0.0.1\n"
            f"    Port {h.port}\n"
            f"    User {USER}\n"
            f"    IdentityFile {d / 'id_ed25519'}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {hs.known_hosts_path}\n"
            f"    StrictHostKeyChecking yes\n"
            f"    BatchMode yes\n"
            f"    ConnectTimeout 10\n"
        )
    hs.ssh_config_path.write_text("\n".join(blocks))

    common = f"-o UserKnownHostsFile={shlex.quote(str(hs.known_hosts_path))} -o StrictHostKeyChecking=yes"
    lines = ["[testhosts]"]
    for h in hs.hosts.values():
        lines.append(
            f"{h.name} ansible_host=127.0.0.1 ansible_port={h.port} ansible_user={USER}"
            f" ansible_ssh_private_key_file={d / 'id_ed25519'}"
            f" ansible_ssh_common_args='{common}'"
        )
    hs.inventory_path.write_text("\n".join(lines) + "\n")


def start_hosts(
    n: int,
    state_dir: str | os.PathLike[str],
    image: str = IMAGE,
    label: str | None = None,
    extra_run_args: Sequence[str] = (),
    home_size: str | None = None,
) -> HostSet:
    """Start ``n`` hosts th1..thN in parallel and return once SSH works on all of them.

    ``label`` (default: a fresh ``rt-<hex>``) tags the containers and names them
    ``<label>-thI``; give each concurrent set its own. ``extra_run_args`` go to
    ``podman run`` before the image. ``home_size`` (e.g. ``"48m"``) gives trainer's home a small file
    system of its own (a tmpfs of that size): a disk that a job or its staging can fill up. On any failure
    the started containers are removed.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    label = label or f"rt-{uuid.uuid4().hex[:10]}"
    pubkey = _keypair(state)
    deadline = time.monotonic() + READY_TIMEOUT
    names = [f"th{i}" for i in range(1, n + 1)]

    run_args = tuple(extra_run_args)
    if home_size:
        run_args += ("--tmpfs", f"/home/{USER}:rw,size={home_size},mode=0755")

    def boot(name: str) -> Host:
        container = f"{label}-{name}"
        port = _run_container(name, container, label, image, pubkey, run_args)
        host = Host(name, container, port, _read_host_key(container, deadline))
        if home_size:  # a fresh tmpfs belongs to root (podman's --tmpfs takes no uid)
            _podman("exec", container, "chown", f"{USER}:{USER}", f"/home/{USER}")
        return host

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(n, 16)) as pool:
            hosts = list(pool.map(boot, names))
            hs = HostSet(state, label, image, hosts)
            _write_files(hs)
            hs._save()
            list(pool.map(lambda name: _wait_for_ssh(hs, name, deadline), names))
    except BaseException:
        stop_all(label)
        raise
    return hs


# -- CLI ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hosts.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build images if needed, start N hosts")
    up.add_argument("n", type=int)
    up.add_argument("state_dir", type=Path)
    up.add_argument("--image", default=IMAGE)
    up.add_argument("--label")
    down = sub.add_parser("down", help="remove the hosts recorded in STATE_DIR")
    down.add_argument("state_dir", type=Path)
    faults = (
        ("drop-ssh", "kill every sshd of host NAME"),
        ("resume-ssh", "bring sshd back"),
        ("block-network", "drop every packet to host NAME's sshd"),
        ("unblock-network", "let them through again"),
        ("restart", "reboot host NAME (stop, then start)"),
    )
    for cmd, what in faults:
        p = sub.add_parser(cmd, help=what)
        p.add_argument("state_dir", type=Path)
        p.add_argument("name")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "up":
            if (args.state_dir / STATE_FILE).exists():
                old = HostSet.load(args.state_dir)
                if _podman("ps", "-aq", "--filter", f"label={LABEL_KEY}={old.label}").stdout:
                    print(f"hosts.py: {args.state_dir} has running hosts; run `down` first", file=sys.stderr)
                    return 1
            build_images()
            t0 = time.monotonic()
            hs = start_hosts(args.n, args.state_dir, image=args.image, label=args.label)
            print(f"{len(hs.names)} hosts up in {time.monotonic() - t0:.1f} s (label {hs.label})")
            for h in hs.hosts.values():
                print(f"  {h.name}  127.0.0.1:{h.port}  {h.container}")
            print(f"ssh -F {hs.ssh_config_path} th1\nansible -i {hs.inventory_path} all -m ping")
        elif args.cmd == "drop-ssh":
            HostSet.load(args.state_dir).drop_ssh(args.name)
        elif args.cmd == "resume-ssh":
            HostSet.load(args.state_dir).resume_ssh(args.name)
        elif args.cmd == "block-network":
            HostSet.load(args.state_dir).block_network(args.name)
        elif args.cmd == "unblock-network":
            HostSet.load(args.state_dir).unblock_network(args.name)
        elif args.cmd == "restart":
            HostSet.load(args.state_dir).restart_container(args.name)
        else:
            hs = HostSet.load(args.state_dir)
            ids = stop_all(hs.label)
            print(f"removed {len(ids)} containers (label {hs.label})")
    except (TestHostError, subprocess.CalledProcessError, FileNotFoundError, KeyError) as exc:
        print(f"hosts.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
