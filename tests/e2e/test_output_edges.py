"""Output edge cases (issue 19): a progress bar's "\\r" shown live, and bytes that are not UTF-8, a 5 MB line
without a newline, stdout and stderr interleaved, unchanged in the host's log, the local copy and stdout
(but for the 5 MB line's cuts at each MiB, issue 28)."""

from __future__ import annotations

import importlib.util
import os
import select
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from driverproc import DRIVER, REPO, SCRIPTS, driver_env, run_driver

BAR = str(SCRIPTS / "progress_bar.py")
CUT = b" [remote-trainer: line cut at 1 MiB; it goes on in the next line]\n"


def _odd_bytes() -> bytes:
    spec = importlib.util.spec_from_file_location("odd_bytes", SCRIPTS / "odd_bytes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return b"".join(data for _, data in module.PIECES)


def start(args: list[str], state_dir: Path) -> subprocess.Popen:
    """The driver with byte pipes (driverproc.start_driver's are text)."""
    return subprocess.Popen(
        [DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=driver_env(state_dir), cwd=REPO
    )


def read_until_bytes(proc: subprocess.Popen, needle: bytes, timeout: float = 60) -> bytes:
    """Read the driver's stdout as it comes, without waiting for a newline, until it contains needle."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} not seen within {timeout} s; saw {got[-300:]!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"driver ended before printing {needle!r}; saw {got[-300:]!r}")
        got += chunk
    return got


def the_rest(proc: subprocess.Popen, timeout: float = 60) -> tuple[bytes, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return out, err.decode(errors="replace")


def bar(n: int) -> bytes:
    return b"".join(b"\rstep %d" % i for i in range(1, n + 1)) + b"\ndone\n"


@pytest.mark.parametrize("where", ["ssh", "local"])
def test_a_progress_bar_is_shown_while_it_is_drawn(where, testhosts, tmp_path):
    marker = f"/tmp/marker-{uuid.uuid4().hex}"
    hosts = ["-i", str(testhosts.inventory_path), "-l", "th1"] if where == "ssh" else []
    proc = start(["train", BAR, *hosts, "--", "6", marker], tmp_path)
    try:
        # The script waits for the marker before its bar's "\n": its steps arrived while it ran, each a
        # redraw that ends in "\r" (the one being drawn is shown once the next one starts).
        early = read_until_bytes(proc, b"step 2\r")
        assert early.startswith(b"\rstep 1\rstep 2\r"), early
        assert b"\n" not in early and b"done" not in early
        if where == "ssh":
            testhosts.ssh("th1", ["touch", marker])
        else:
            Path(marker).touch()
        out, err = the_rest(proc)
    finally:
        proc.kill()
        if where == "local":
            Path(marker).unlink(missing_ok=True)
    assert proc.returncode == 0, err
    assert early + out == bar(6)


def test_logs_follow_shows_a_progress_bar_while_it_is_drawn(testhosts, tmp_path):
    marker = f"/tmp/marker-{uuid.uuid4().hex}"
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(["train", "-d", BAR, *inv, "--", "6", marker], tmp_path)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    proc = start(["logs", "-f", job], tmp_path)
    try:
        early = read_until_bytes(proc, b"step 2\r")
        assert b"\n" not in early
        testhosts.ssh("th1", ["touch", marker])
        out, err = the_rest(proc)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert early + out == bar(6)


def test_bytes_reach_the_logs_and_stdout_unchanged(testhosts, tmp_path):
    expected = _odd_bytes()
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    proc = start(["train", str(SCRIPTS / "odd_bytes.py"), *inv], tmp_path)
    out, err = the_rest(proc, timeout=120)
    assert proc.returncode == 0, err
    # The driver ends a last line that has no newline with one, and cuts the 5 MB line into pieces of 1 MiB,
    # each but the last ending in the marker (issue 28); every other byte is the script's.
    assert out.count(CUT) == 4
    assert out.replace(CUT, b"") == expected + b"\n"
    (job,) = (p.name for p in (tmp_path / "jobs").iterdir())
    copy = tmp_path / "jobs" / job / "logs" / "th1.log"
    assert copy.read_bytes() == expected
    on_host = subprocess.run(
        testhosts.ssh_argv("th1", f"cat ~/.remote-trainer/jobs/{job}/log"), capture_output=True, timeout=60
    )
    assert on_host.returncode == 0 and on_host.stdout == expected
    # `logs` relays the host's log again; once the job is gone from the host, it prints the copy kept here.
    for gone in (False, True):
        if gone:
            testhosts.ssh("th1", f"rm -rf ~/.remote-trainer/jobs/{job}")
        proc = start(["logs", job], tmp_path)
        out, err = the_rest(proc, timeout=120)
        assert proc.returncode == 0, err
        assert out.count(CUT) == 4 and out.replace(CUT, b"") == expected + b"\n", f"gone={gone}"
        assert ("copy of its log kept here" in err) == gone, err
