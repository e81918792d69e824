"""The job specification: what to run, where, and with which limits, validated before anything starts."""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from driver.errors import (
    BadContainer,
    BadEnv,
    BadInventory,
    BadNodes,
    BadOutput,
    BadRequirements,
    BadValue,
    BadWorkdir,
    ScriptIsDirectory,
    ScriptMissing,
)
from driver.execution import assets
from driver.executors.slurm import Slurm
from driver.job import contract

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# An image reference as engines take it: [registry[:port]/]path[:tag][@digest], no spaces, not an option.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*\Z")
_SHM_SIZE = re.compile(r"[1-9][0-9]*[bkmgBKMG]?\Z")
CONTAINERFILES = ("Containerfile", "Dockerfile")  # looked for in --workdir by --build, in this order


@dataclass
class Container:
    """How the script runs in a container on each host (`--image` and friends); empty image: no container.

    Only the fields that are set reach the job contract (the `container` field; defaults in the role).
    """

    image: str | None = None
    engine: str | None = None  # auto, podman or docker
    gpus: str | None = None  # "all" or a count
    shm_size: str | None = None
    build: bool = False
    from_local: bool = False
    keep: bool = False

    @property
    def wanted(self) -> bool:
        return bool(self.image or self.build)

    def validate(self, workdir: Path | None) -> None:
        def bad(message: str, hint: str) -> BadContainer:
            return BadContainer(message, hint=hint)

        if self.image is not None and not _IMAGE.match(self.image):
            raise bad(f"invalid --image {self.image!r}", "give an image reference such as python:3.11-slim")
        if not self.wanted:
            for name, value in (
                ("--engine", self.engine),
                ("--gpus", self.gpus),
                ("--shm-size", self.shm_size),
            ):
                if value:
                    raise bad(
                        f"{name} needs --image (or --build)", "add --image IMAGE: the script runs in it"
                    )
            for name, flag in (("--image-from-local", self.from_local), ("--keep-container", self.keep)):
                if flag:
                    raise bad(f"{name} needs --image", "add --image IMAGE: the script runs in it")
        if self.gpus is not None and self.gpus != "all" and not (self.gpus.isdigit() and int(self.gpus) > 0):
            raise bad(f"invalid --gpus {self.gpus!r}", "give all, or a positive number of GPUs")
        if self.shm_size is not None and not _SHM_SIZE.match(self.shm_size):
            raise bad(f"invalid --shm-size {self.shm_size!r}", "give a size such as 8g or 512m")
        if self.build and self.from_local:
            raise bad(
                "--build and --image-from-local exclude each other",
                "build on the host (--build) or send a local image (--image-from-local)",
            )
        if self.from_local and not self.image:
            raise bad("--image-from-local needs --image", "name the local image to send: --image NAME")
        if self.build:
            if workdir is None:
                raise bad("--build needs --workdir", "stage the directory that holds the Containerfile")
            if not any((workdir / name).is_file() for name in CONTAINERFILES):
                raise bad(
                    f"--build: no Containerfile or Dockerfile in {str(workdir)!r}",
                    "put the image's Containerfile in the --workdir",
                )

    def contract(self) -> dict[str, object] | None:
        if not self.wanted:
            return None
        given: dict[str, object | None] = {
            "image": self.image,
            "engine": self.engine,
            "gpus": self.gpus,
            "shm_size": self.shm_size,
            "build": True if self.build else None,
            "from_local": True if self.from_local else None,
            "keep": True if self.keep else None,
        }
        return {k: v for k, v in given.items() if v is not None}


@dataclass
class Requirements:
    """What a host must have before the script runs (the remote_host role's variables).

    Only what is set here is passed on, so that per-host values in the inventory are not overridden.
    """

    file: Path | None = None
    packages: list[str] = field(default_factory=list)
    python: str | None = None
    interpreter: str | None = None
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    wheelhouse: Path | None = None
    no_index: bool = False
    system_site_packages: bool = False

    def validate(self) -> None:
        problem = file_problem(self.file) if self.file is not None else None
        if problem:
            raise BadRequirements(
                f"requirements file {str(self.file)!r} {problem}",
                hint="give a readable requirements file (pip's format: one requirement a line)",
            )
        if self.wheelhouse is not None and not self.wheelhouse.is_dir():
            raise BadRequirements(
                f"wheelhouse {str(self.wheelhouse)!r} is not a directory",
                hint="give a local directory of wheels (pip download -d DIR ...)",
            )

    def extravars(self) -> dict[str, object]:
        given: dict[str, object] = {
            "remote_host_requirements_file": str(self.file.resolve()) if self.file else None,
            "remote_host_packages": self.packages or None,
            "remote_host_python": self.python,
            "remote_host_interpreter": self.interpreter,
            "remote_host_index_url": self.index_url,
            "remote_host_extra_index_urls": self.extra_index_urls or None,
            "remote_host_find_links": self.find_links or None,
            "remote_host_wheelhouse": str(self.wheelhouse.resolve()) if self.wheelhouse else None,
            "remote_host_no_index": True if self.no_index else None,
            "remote_host_system_site_packages": True if self.system_site_packages else None,
        }
        return {k: v for k, v in given.items() if v is not None}


@dataclass
class JobSpec:
    """Everything `driver train` needs to run a script; no field holds a secret except `env`.

    A field of the job contract left None takes the role's default (driver/job/contract.py).
    """

    script: Path
    args: list[str] = field(default_factory=list)
    inventory: str | None = None
    limit: str | None = None
    workdir: Path | None = None
    python: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    requirements: Requirements = field(default_factory=Requirements)
    provision: bool = True
    detach: bool = False
    output: str | None = None
    output_dir: Path | None = None
    sync_every: float | None = None
    max_workdir_size: int = 2 << 30
    nodes: int | str = 0  # 0: every host on its own; N or "all": one job over that many hosts
    launcher: str | None = None  # None or "torchrun"
    nproc_per_node: int | str | None = None  # a number, or "gpu", "cpu", "auto" (torchrun)
    master_port: int | None = None
    timeout: float | None = None
    grace: float | None = None
    reconnect: float | None = None  # how long a followed host may stay unreachable (None: the role's default)
    container: Container = field(default_factory=Container)
    executor: str | None = None  # process, container or slurm; None: the host's (inventory) or the image's
    slurm: Slurm = field(default_factory=Slurm)
    job_id: str = field(default_factory=lambda: new_job_id())

    @staticmethod
    def create_output_dir(path: Path) -> Path:
        """Create the job's local outputs directory (--output-dir/<job>); failing to is a BadOutput (85)."""
        return make_output_dir(path)

    def validate(self) -> None:
        """Raise the typed error for the first bad input; touch no host."""
        check_script(self.script)
        if self.workdir is not None:
            check_workdir(self.workdir)
        if self.inventory is not None:
            check_inventory(self.inventory)
        if self.output is not None:
            check_output(self.output)
        if self.output_dir is not None:
            check_output_dir(self.output_dir)
        self.requirements.validate()
        self.slurm.validate()
        if self.executor == "slurm" and self.container.wanted:
            raise BadContainer(
                "--image with --executor slurm: containers under Slurm (Apptainer, enroot) are not supported",
                hint="leave out --image (the script runs with the login node's python, in the allocation), "
                "or run it in a container on a host of its own",
            )
        if self.executor == "container" and not self.container.wanted:
            raise BadContainer("--executor container needs --image (or --build)", hint="add --image IMAGE")
        self.container.validate(self.workdir)
        if self.container.build and (self.requirements.file or self.requirements.packages):
            raise BadContainer(
                "--requirements and --packages with --build: the image is built on the host",
                hint="install them in the Containerfile (RUN pip install -r requirements.txt)",
            )


def new_job_id() -> str:
    """Sortable, unique job id: UTC time plus random hex."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def parse_duration(text: str, option: str = "--timeout", allow_zero: bool = False) -> float:
    """'90m' -> 5400.0; accepts ms, s, m, h, d and combinations like '1h30m'; a bare number is seconds."""
    value = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
        pos = match.end()
        while pos < len(value) and value[pos] == " ":
            pos += 1
    if not value or pos != len(value) or total < 0 or (total == 0 and not allow_zero):
        raise BadValue(
            f"invalid {option} {text!r}: expected a {'' if allow_zero else 'positive '}duration",
            hint="use a number of seconds or a duration such as 90s, 30m, 2h or 1h30m",
        )
    return total


def parse_env(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """['K=V', 'K2'] -> {'K': 'V', 'K2': <value of K2 here>}; values are kept byte for byte."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not _ENV_NAME.match(name):
            raise BadEnv(
                # The name alone: what follows '=' may be a secret.
                f"invalid --env {name!r}=...: {name!r} is not a valid variable name",
                hint="use --env NAME=VALUE (NAME: letters, digits and _, not starting with a digit)",
            )
        if not sep:
            if name not in os.environ:
                raise BadEnv(
                    f"invalid --env {item!r}: no '=' and {name} is not set in this environment",
                    hint=f"use --env {name}=VALUE, or export {name} before running the driver",
                )
            value = os.environ[name]
        if "\0" in value:
            raise BadEnv(f"invalid --env {name}: the value contains a NUL byte", hint="remove the NUL byte")
        env[name] = value
    return env


def parse_nodes(text: str | None, launcher: str | None) -> int | str:
    """--nodes: a positive number or 'all'; a launcher alone means every matched host."""
    if text is None:
        return "all" if launcher else 0
    if text == "all":
        return "all"
    if not text.isdigit() or int(text) < 1:
        raise BadNodes(f"invalid --nodes {text!r}", hint="give a positive number of hosts, or 'all'")
    return int(text)


NPROC_WORDS = ("gpu", "cpu", "auto")  # torchrun's own: one process per GPU, per CPU, GPUs else CPUs


def parse_nproc(text: str | None, launcher: str | None) -> int | str:
    """--nproc-per-node: a positive number or one of torchrun's words; only with --launcher torchrun."""
    if text is None:
        return 1
    if not launcher:
        raise BadNodes(
            f"--nproc-per-node {text} needs a launcher",
            hint="add --launcher torchrun (it starts the processes)",
        )
    if text in NPROC_WORDS:
        return text
    if not text.isdigit() or int(text) < 1:
        raise BadNodes(
            f"invalid --nproc-per-node {text!r}",
            hint="give a positive number of processes, or gpu (one per GPU), cpu or auto",
        )
    return int(text)


def file_problem(path: Path) -> str | None:
    """What keeps a file given on the command line from being read (None: nothing): it is opened, so that
    permissions, ACLs and unreadable directories on the way all count, for root too."""
    try:
        if path.is_dir():
            return "is a directory"
        if not path.exists():
            return "not found"
        if not path.is_file():
            return "is not a regular file"
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def check_script(script: Path) -> None:
    problem = file_problem(script)
    if problem == "is a directory":
        raise ScriptIsDirectory(
            f"script {str(script)!r} is a directory",
            hint="give the script file, and stage its directory with --workdir DIR",
        )
    if problem == "not found":
        raise ScriptMissing(f"script {str(script)!r} not found", hint="check the path of the script")
    if problem:
        raise ScriptMissing(
            f"script {str(script)!r} {problem}",
            hint="check the permissions of the file and of the directories above it",
        )


def check_workdir(workdir: Path) -> None:
    try:
        if not workdir.is_dir():
            raise BadWorkdir(
                f"--workdir {str(workdir)!r} " + ("is not a directory" if workdir.exists() else "not found"),
                hint="give an existing directory to stage next to the script",
            )
        os.listdir(workdir)
    except OSError as exc:
        raise BadWorkdir(
            f"--workdir {str(workdir)!r} cannot be read ({exc.strerror or exc})",
            hint="check the permissions of the directory and of the directories above it",
        ) from None


def check_inventory(source: str) -> None:
    """A source with a comma is a host list; anything else must be an existing file or directory, readable.

    Cheap, before every run. What only parsing tells (no hosts, a port that is no number) is said after a
    run that failed: inventory_problem(), so that a good inventory costs no second parse."""
    if "," in source:
        if not any(name.strip() for name in source.split(",")):
            raise BadInventory(
                f"inventory {source!r} names no host",
                hint="give hosts as a comma list such as 'host1,host2,' (or 'host1,' for one host)",
            )
        return
    if not os.path.exists(source):
        raise BadInventory(
            f"inventory {source!r} not found",
            hint="give an inventory file or directory, or a comma-separated host list such as 'host1,host2,'",
        )
    try:
        if os.path.isdir(source):
            os.listdir(source)
            return  # Ansible reads the directory's files; what it says about them is reported after the run
        with open(source, "rb"):
            pass
    except OSError as exc:
        raise BadInventory(
            f"inventory {source!r} cannot be read ({exc.strerror or exc})",
            hint="check the permissions of the inventory and of the directories above it",
        ) from None


def inventory_problem(source: str | None) -> BadInventory | None:
    """What is wrong with an inventory file, read by Ansible's own file plugins (INI, YAML, TOML): it does not
    parse, has no hosts, or gives a host a port that is no number; None when nothing is, or only running it
    tells (a script, a plugin's configuration, a directory, a host list). For a run that already failed."""
    if not source or "," in source or not os.path.isfile(source):
        return None
    try:
        hosts = inventory_hosts(source)
    except BadInventory as exc:
        return exc
    if hosts is None:
        return None
    if not hosts:
        return BadInventory(
            f"inventory {source!r} has no hosts",
            hint="add the hosts to it, one a line (gpu1 ansible_host=10.0.0.5), or give another inventory",
        )
    for host, hostvars in hosts.items():
        for name in ("ansible_port", "ansible_ssh_port"):
            value = hostvars.get(name)
            if value is None or "{{" in str(value):  # a template: Ansible decides
                continue
            port = int(value) if str(value).strip().isdigit() else 0
            if not 1 <= port <= 65535:
                return BadInventory(
                    f"inventory {source!r}: host {host} has {name}={value!r}, which is not a port number",
                    hint=f"set {name} of {host} to its SSH port (1-65535), or leave it out for port 22",
                )
    return None


_YAML_EXTENSIONS = (".yaml", ".yml", ".json")


def inventory_hosts(source: str) -> dict[str, dict[str, object]] | None:
    """The hosts of an inventory file and their variables (their groups' and their own), read by Ansible's own
    file plugins as ansible-playbook tries them (yaml, ini, toml); None where only running it tells (a script,
    an inventory plugin's configuration). Raises BadInventory when no plugin can parse the file."""
    if os.access(source, os.X_OK):
        return None  # a dynamic inventory script: it runs once, in the play
    # Ansible in this process reads the driver's ansible.cfg, as the plays do, never one in the current
    # directory (a cloned repository's could load plugins of its own).
    os.environ["ANSIBLE_CONFIG"] = str(assets.ansible_cfg())
    try:
        from ansible.inventory.data import InventoryData
        from ansible.inventory.helpers import get_group_vars
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import inventory_loader
    except ImportError:  # Ansible's own error comes with the play
        return None
    loader = DataLoader()
    ext = os.path.splitext(source)[1]
    if ext in (".yaml", ".yml"):
        try:
            data = loader.load_from_file(source)
        except Exception:
            data = None
        if isinstance(data, dict) and "plugin" in data:
            return None  # an inventory plugin's configuration (the `auto` plugin)
    errors: dict[str, str] = {}
    for name in ("yaml", "ini", "toml"):
        plugin = inventory_loader.get(name)
        try:
            if plugin is None or not plugin.verify_file(source):
                continue
            inventory = InventoryData()
            plugin.parse(inventory, loader, source, cache=False)
        except Exception as exc:
            errors[name] = " ".join(str(exc).split())
            continue
        return {
            host.name: {**get_group_vars(host.get_groups()), **host.get_vars()}
            for host in inventory.hosts.values()
        }
    wanted = "yaml" if ext in _YAML_EXTENSIONS else "toml" if ext == ".toml" else "ini"
    cause = errors.get(wanted) or next(iter(errors.values()), "no inventory plugin reads it")
    raise BadInventory(
        f"inventory {source!r} could not be parsed: {cause}",
        hint="check its syntax with `ansible-inventory -i INVENTORY --list`",
    )


def check_output(output: str) -> None:
    problem = contract.output_problem(output)
    if problem:
        raise BadOutput(
            f"invalid --output {output!r}: {problem}",
            hint="give a directory relative to the script's working directory, such as outputs or runs/exp1",
        )


def check_output_dir(output_dir: Path) -> None:
    """--output-dir is a directory, or can be created: its nearest existing parent is a directory we may
    write in."""
    if output_dir.exists() and not output_dir.is_dir():
        raise BadOutput(
            f"--output-dir {str(output_dir)!r} exists and is not a directory",
            hint="give a directory (it is created when missing)",
        )
    parent = Path(os.path.abspath(output_dir))
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BadOutput(
            f"--output-dir {str(output_dir)!r} cannot be created: {str(parent)!r} is not a directory",
            hint="give a directory whose parents are directories (it is created when missing)",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadOutput(
            f"--output-dir {str(output_dir)!r} cannot be created: {str(parent)!r} is not writable",
            hint="give a directory you may write in (it is created when missing)",
        )


def make_output_dir(path: Path) -> Path:
    """Create the job's local outputs directory; what keeps it from being created is a BadOutput (85)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadOutput(
            f"--output-dir: {str(path)!r} cannot be created ({exc.strerror or exc})",
            hint="give a directory you may write in (it is created when missing)",
        ) from None
    return path
