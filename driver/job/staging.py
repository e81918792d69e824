"""What of a workdir gets staged: rsync's own view (with the role's filters), its size, and the mirror key."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import stat
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
    manifest: str = (
        ""  # what the filters let through (names, types, modes, sizes, mtimes), hashed; "" if unsure
    )


def parse_size(text: str, option: str = "--max-workdir-size") -> int:
    """'2G' -> 2147483648; plain numbers are bytes. `option` names the value in the error."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if not match:
        raise BadValue(f"invalid {option} {text!r}", hint="use a size such as 500M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def measure(workdir: Path) -> int:
    """Bytes rsync would stage from workdir, honouring .gitignore, .driverignore and leaving out .git."""
    return survey(workdir)[0]


def survey(workdir: Path) -> tuple[int, str]:
    """Bytes rsync would stage from workdir (with the role's filters), and the manifest of what it would send.

    The manifest hashes every entry of rsync's own list (its name) with what this machine's lstat says of
    it: type and mode, size and mtime in nanoseconds of a file, a link's target. A host whose mirror was made
    from the same manifest has what rsync would send (the job then starts without rsync). A name that rsync
    shows escaped, or that cannot be read back, makes the manifest "" (rsync decides, every time).
    """
    if shutil.which("rsync") is None:
        raise BadWorkdir("rsync is not installed here", hint="install rsync (it stages --workdir)")
    filters = contract.default("stage_filters")  # the role's own rules
    argv = [
        "rsync",
        "-a",
        "-8",
        "--dry-run",
        "--stats",
        "--out-format=%i %n",
        *(f"--filter={f}" for f in filters),
        f"{workdir}/",
        "/nonexistent",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", check=False).stdout
    match = _TOTAL.search(out)
    if not match:
        raise BadWorkdir(
            f"could not list --workdir {str(workdir)!r} with rsync", hint="check its permissions"
        )
    size = int(match.group(1).replace(",", "").replace(".", ""))
    return size, _manifest(workdir, out, filters)


def _manifest(workdir: Path, listing: str, filters: list[str]) -> str:
    digest = hashlib.sha256("\0".join(filters).encode())
    for line in listing.splitlines():
        item, _, name = line.partition(" ")
        if len(item) != 11 or not name:
            continue  # rsync's --stats lines
        if "\\#" in name:
            return ""  # a name rsync escaped: not read back here
        path = workdir / name.rstrip("/")
        try:
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        except OSError:
            return ""
        regular = stat.S_ISREG(st.st_mode)
        # A directory is what it lists (its mtime also moves for files the filters leave out).
        mtime = 0 if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
        entry = f"{name}\0{st.st_mode}\0{st.st_size if regular else 0}\0{mtime}\0{link}\n"
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def plan(workdir: Path, script: Path, max_size: int) -> Stage:
    workdir = workdir.resolve()
    size, manifest = survey(workdir)
    if size > max_size:
        raise WorkdirTooBig(
            f"--workdir {str(workdir)!r} holds {human(size)} to stage, over the limit of {human(max_size)}",
            hint="leave data out with a .driverignore (gitignore syntax) or .gitignore, "
            "or raise --max-workdir-size",
        )
    script = script.resolve()
    rel = script.relative_to(workdir).as_posix() if script.is_relative_to(workdir) else ""
    key = hashlib.sha256(f"{socket.gethostname()}:{workdir}".encode()).hexdigest()[:16]
    return Stage(workdir, key, rel, size, manifest)


def human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
