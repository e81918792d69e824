"""Whether this machine's rsync may receive what a host sends (a job's outputs).

Over SSH a job's outputs come back with rsync, this machine receiving and the host sending: a hostile host
is a malicious sender. rsync before 3.4.0 lacks the receiver's defences against one (CVE-2024-12086: files
outside the destination read through the basis-file path; CVE-2024-12087: writes outside it through a
duplicate directory list; CVE-2024-12088: --safe-links bypassed). The fix raised rsync's protocol to 32, and
the distributions that backported it did the same (Debian 12's 3.2.7-1+deb12u1 and later report
`protocol version 32`): the protocol, not the version number, tells a fixed rsync.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from driver.errors import UnsafeRsync

# The protocol of rsync 3.4.0 and of the distributions' backports of its fixes.
SAFE_PROTOCOL = 32
_VERSION = re.compile(r"version\s+v?(\d+\.\d+\.\d+\S*)")
_PROTOCOL = re.compile(r"protocol version\s+(\d+)")


def rsync_problem(version_text: str, path: str = "") -> str | None:
    """Why an rsync (at path) whose `rsync --version` printed version_text must not receive from a host, or
    None."""
    first = version_text.splitlines()[0].strip() if version_text else ""
    protocol = _PROTOCOL.search(first)
    if protocol and int(protocol.group(1)) >= SAFE_PROTOCOL:
        return None
    version = _VERSION.search(first)
    if version:
        named = f"rsync {version.group(1)}"
    else:  # openrsync (macOS) names itself first
        named = first.split(":")[0].strip() or "an rsync without a version"
    proto = f"protocol {protocol.group(1)}" if protocol else "no protocol version"
    where = f"{path}, " if path else ""
    return f"{named} ({where}{proto}) lacks the fixes against a malicious sender (CVE-2024-12086/12087/12088)"


@functools.cache
def local_problem() -> str | None:
    """What is wrong with the rsync on this machine's PATH (the one Ansible's synchronize runs), or None;
    None too when there is none (the copy then fails on its own, with its own message)."""
    path = shutil.which("rsync")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"rsync at {path} did not tell its version ({exc})"
    return rsync_problem(out.stdout, path)


def unsafe_error(problem: str) -> UnsafeRsync:
    return UnsafeRsync(
        f"this machine's {problem}: a host's outputs are not received with it",
        hint="install rsync 3.4.0 or newer first on PATH (or your distribution's security update: "
        "`rsync --version` then says protocol version 32)",
    )


def check_local() -> None:
    """Raise UnsafeRsync when this machine's rsync must not receive a host's outputs."""
    problem = local_problem()
    if problem:
        raise unsafe_error(problem)
