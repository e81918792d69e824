"""What of a workdir gets staged: rsync's own view (with the role's filters), its size, and the mirror key."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from driver.errors import BadValue, BadWorkdir, WorkdirTooBig
from driver.job import contract

_TOTAL = re.compile(r"Total file size: ([\d,.]+) bytes")

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass
class Stage:
    workdir: Path
    key: str  # name of the workdir's mirror on each host
    script_rel: str  # the script's path inside the workdir, or "" when it is outside
    size: int  # bytes that the filters let through


def parse_size(text: str, option: str = "--max-workdir-size") -> int:
    """'2G' -> 2147483648; plain numbers are bytes. `option` names the value in the error."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if not match:
        raise BadValue(f"invalid {option} {text!r}", hint="use a size such as 500M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def measure(workdir: Path) -> int:
    """Bytes rsync would stage from workdir, honouring .gitignore, .driverignore and leaving out .git."""
    if shutil.which("rsync") is None:
        raise BadWorkdir("rsync is not installed here", hint="install rsync (it stages --workdir)")
    argv = [
        "rsync",
        "-a",
        "--dry-run",
        "--stats",
        *(f"--filter={f}" for f in contract.default("stage_filters")),  # the role's own rules
        f"{workdir}/",
        "/nonexistent",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    match = _TOTAL.search(out)
    if not match:
        raise BadWorkdir(
            f"could not list --workdir {str(workdir)!r} with rsync", hint="check its permissions"
        )
    return int(match.group(1).replace(",", "").replace(".", ""))


def plan(workdir: Path, script: Path, max_size: int) -> Stage:
    workdir = workdir.resolve()
    size = measure(workdir)
    if size > max_size:
        raise WorkdirTooBig(
            f"--workdir {str(workdir)!r} holds {human(size)} to stage, over the limit of {human(max_size)}",
            hint="leave data out with a .driverignore (gitignore syntax) or .gitignore, "
            "or raise --max-workdir-size",
        )
    script = script.resolve()
    rel = script.relative_to(workdir).as_posix() if script.is_relative_to(workdir) else ""
    key = hashlib.sha256(f"{socket.gethostname()}:{workdir}".encode()).hexdigest()[:16]
    return Stage(workdir, key, rel, size)


def human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
