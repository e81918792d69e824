"""Run the real `driver` console script as a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DRIVER = str(Path(sys.executable).parent / "driver")
REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def driver_env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["REMOTE_TRAINER_STATE_DIR"] = str(state_dir)
    return env


def run_driver(
    args: list[str], state_dir: Path, timeout: float = 120, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**driver_env(state_dir), **(extra_env or {})},
        cwd=REPO,
    )


def start_driver(args: list[str], state_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [DRIVER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=driver_env(state_dir),
        cwd=REPO,
    )


def read_until(proc: subprocess.Popen, needle: str, timeout: float = 60, stream: str = "stdout") -> list[str]:
    """Read the driver's stdout (or stderr) line by line until a line contains needle; fail on timeout or EOF.

    Reads the pipe a byte at a time with os.read, so that nothing past the needle's line is taken
    into a buffer that select() cannot see (the later lines stay for the next call or communicate()).
    """
    import select

    fd = getattr(proc, stream).fileno()
    seen: list[str] = []
    line = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        byte = os.read(fd, 1)
        if not byte:
            raise AssertionError(f"driver ended before printing {needle!r}; saw {seen!r}")
        if byte != b"\n":
            line += byte
            continue
        text, line = line.decode(errors="replace"), b""
        seen.append(text)
        if needle in text:
            return seen
    raise AssertionError(f"{needle!r} not seen within {timeout} s; saw {seen!r}")


def local_processes_matching(text: str) -> list[str]:
    """Command lines of this machine's processes containing text (excluding this test process)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{name}: {cmdline}")
    return found


def wait_until_no_local_processes_match(text: str, timeout: float = 15) -> list[str]:
    """Wait for this machine's processes containing text to end; returns those left after timeout."""
    deadline = time.monotonic() + timeout
    while local_processes_matching(text) and time.monotonic() < deadline:
        time.sleep(0.2)
    return local_processes_matching(text)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def job_output(output_dir: Path, host: str) -> Path:
    """Where the one job that used --output-dir output_dir put host's outputs: <output_dir>/<job>/<host>."""
    (job,) = [p for p in Path(output_dir).iterdir() if p.is_dir()]
    return job / host
