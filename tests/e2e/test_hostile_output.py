"""A hostile host's output (issue 28): a line of 1 GiB without a newline beside a host that prints lines,
malformed relay records, terminal escape sequences. The driver stays bounded and linear, loses nothing, and
no escape sequence of a host's reaches the user's terminal."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import pty
import select
import subprocess
import threading
import time
from pathlib import Path

import pytest
from driverproc import DRIVER, REPO, SCRIPTS, driver_env, run_driver

HOSTILE = SCRIPTS / "hostile_output.py"
CUT = b" [remote-trainer: line cut at 1 MiB; it goes on in the next line]"
MIB = 1 << 20
# The line's size: 1 GiB as the issue asks (about 4-5 minutes on the 2-core CI machine, see the README's
# Performance section); REMOTE_TRAINER_HOSTILE_LINE_MIB runs it smaller.
LINE = int(os.environ.get("REMOTE_TRAINER_HOSTILE_LINE_MIB", "1024")) * MIB
# The driver's peak RSS while it relays it: the relay holds at most 1 MiB of a line (and a batch of 256 KiB).
RSS_BOUND = 200 * MIB


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in _module("hostile_output").long_line(size):
        digest.update(piece)
    return digest.hexdigest()


def _hwm(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _job_id(state: Path) -> str:
    (job,) = (p.name for p in (state / "jobs").iterdir())
    return job


class _Th1Line:
    """th1's line as the driver prints it: its pieces' sizes, whether each was cut, and the bytes' sha256."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.pieces: list[tuple[int, bool]] = []

    def add(self, body: bytes) -> None:
        cut = body.endswith(CUT)
        body = body.removesuffix(CUT)
        self.pieces.append((len(body), cut))
        self.digest.update(body)
        self.size += len(body)

    def check(self, expected: str) -> None:
        assert self.size == LINE and self.digest.hexdigest() == expected
        # Pieces of at most 1 MiB (up to 3 bytes less where a UTF-8 character would be split), each but
        # the last ending in the marker.
        assert all(cut for _n, cut in self.pieces[:-1]) and not self.pieces[-1][1]
        assert all(MIB - 3 <= n <= MIB for n, _cut in self.pieces[:-1]), {n for n, _ in self.pieces}


def _read_lines(proc: subprocess.Popen, on_line, timeout: float, on_wait=None) -> str:
    """Hand each line of proc's stdout to on_line as it comes (on_wait between reads); its stderr."""
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    buf = b""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, f"the driver did not end within {timeout} s"
            if select.select([fd], [], [], 0.5)[0]:
                chunk = os.read(fd, 4 * MIB)
                if not chunk:
                    break
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    on_line(line)
            if on_wait is not None:
                on_wait()
        assert buf == b"", buf[:200]
        proc.wait(timeout=60)
    finally:
        proc.kill()
    reader.join(timeout=10)
    return b"".join(err).decode(errors="replace")


def _driver(args: list[str], state: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=driver_env(state), cwd=REPO
    )


def test_a_line_of_1_gib_without_a_newline_is_relayed_cut_bounded_and_whole(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1,th2"]
    started = time.monotonic()
    proc = _driver(["train", str(HOSTILE), *inv, "--", "th1", str(LINE), "40"], tmp_path)
    th1, ticks, peak = _Th1Line(), [], [0]

    def on_line(line: bytes) -> None:
        if line.startswith(b"[th2] tick "):
            ticks.append((time.monotonic(), th1.size))
        else:
            assert line.startswith(b"[th1] "), line[:200]
            th1.add(line[len(b"[th1] ") :])

    stderr = _read_lines(proc, on_line, 900, lambda: peak.append(max(peak.pop(), _hwm(proc.pid))))
    elapsed = time.monotonic() - started
    print(f"{LINE // MIB} MiB line relayed in {elapsed:.1f} s; driver peak RSS {peak[0] / MIB:.0f} MiB")
    assert proc.returncode == 0, stderr
    expected = _expected_sha256(LINE)
    th1.check(expected)
    # The other host's lines kept coming while th1's line was being relayed: no gap of 3 s.
    during = [t for t, so_far in ticks if 0 < so_far < LINE]
    assert len(during) >= 10, (len(ticks), len(during))
    assert max(b - a for a, b in itertools.pairwise(during)) < 3.0
    assert peak[0] < RSS_BOUND, f"driver peak RSS {peak[0] / MIB:.0f} MiB"
    # The local copy and the host's log hold every byte.
    job = _job_id(tmp_path)
    copy = tmp_path / "jobs" / job / "logs" / "th1.log"
    assert copy.stat().st_size == LINE
    with copy.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == expected
    on_host = testhosts.ssh("th1", f"sha256sum ~/.remote-trainer/jobs/{job}/log")
    assert on_host.stdout.split()[0] == expected
    # `driver logs` prints the same: here from the copy kept here, once the job is gone from the hosts.
    for host in ("th1", "th2"):
        testhosts.ssh(host, f"rm -rf ~/.remote-trainer/jobs/{job}")
    replayed = _Th1Line()
    stderr = _read_lines(_driver(["logs", job, "--host", "th1"], tmp_path), replayed.add, 600)
    replayed.check(expected)
    copy.unlink()


# A jobctl.py that a hostile host (or the job itself: it may write its own job directory) puts in the job's
# .rt/: the real one's answers, with the output's bytes replaced by something that is not base64, and other
# lines that are not JSON.
FORGED_JOBCTL = r"""
import json, os, runpy, sys

class Mangled:
    def write(self, text):
        for line in text.splitlines(True):
            try:
                st = json.loads(line)
            except ValueError:
                sys.__stdout__.write(line)
                continue
            if isinstance(st, dict) and st.get("n"):
                st["data"] = "@@ not base64 @@"
            sys.__stdout__.write(json.dumps(st) + "\n")
        return len(text)

    def flush(self):
        sys.__stdout__.flush()

sys.stdout = Mangled()
sys.argv[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jobctl_real.py")
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def ended_job_with_a_forged_jobctl(testhosts, tmp_path, forged: str) -> str:
    """A job on th1 that ended with code 3, whose jobctl.py is then replaced by `forged` (which runs the real
    one as jobctl_real.py): the host that answers the driver's next `logs -f` is a hostile one."""
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(["train", "-d", str(SCRIPTS / "exit_with.py"), *inv, "--", "3"], tmp_path)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    assert run_driver(["wait", job], tmp_path).returncode == 3
    rt = f"~/.remote-trainer/jobs/{job}/.rt"
    testhosts.ssh("th1", f"mv {rt}/jobctl.py {rt}/jobctl_real.py && cat > {rt}/jobctl.py", input=forged)
    return job


def test_malformed_relay_records_are_one_warning_and_the_job_s_outcome_still_comes(testhosts, tmp_path):
    job = ended_job_with_a_forged_jobctl(testhosts, tmp_path, FORGED_JOBCTL)
    # Before (issue 28): base64.b64decode raised in the driver's event handler (a traceback, exit 125).
    res = run_driver(["logs", "-f", job], tmp_path)
    assert res.returncode == 3, res.stderr
    warnings = [line for line in res.stderr.splitlines() if "malformed relay record" in line]
    assert len(warnings) == 1, res.stderr
    assert warnings[0].startswith("warning: [th1] ")
    assert "Traceback" not in res.stderr and "about to end" not in res.stdout


def _on_a_terminal(args: list[str], state: Path) -> tuple[int, bytes]:
    """Run the driver with its stdout on a pseudo-terminal; its exit code and what the terminal got."""
    main, other = pty.openpty()
    proc = subprocess.Popen(
        [DRIVER, *args], stdout=other, stderr=subprocess.PIPE, env=driver_env(state), cwd=REPO
    )
    os.close(other)
    got = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        got += chunk
    os.close(main)
    proc.communicate(timeout=120)
    return proc.returncode, got


def test_a_host_s_escape_sequences_are_shown_not_obeyed_on_a_terminal(testhosts, tmp_path):
    escapes = _module("escapes")
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    code, shown = _on_a_terminal(["train", str(SCRIPTS / "escapes.py"), *inv], tmp_path)
    assert code == 0, shown
    # The terminal turns "\n" into "\r\n". No OSC (clipboard, title), query or 8-bit control reached it; each
    # is visible instead. Colors and the progress bar's redraw and erase-in-line did.
    assert b"\x1b]" not in shown and b"\x1b[6n" not in shown and "\u009d".encode() not in shown
    assert (
        b"before ^[]52;c;ZWNobyBwd25lZA==\x07 ^[]0;owned^[\\ ^[[6n ^[]52;c;ZWNobyBwd25lZA==^[\\ after"
        in shown
    )
    assert escapes.COLOR in shown and b"\r50%\x1b[K\r100%\r\n" in shown
    # Not a terminal: the bytes unchanged; the log copy holds them as the host's log does.
    res = subprocess.run(
        [DRIVER, "train", str(SCRIPTS / "escapes.py"), *inv],
        capture_output=True,
        env=driver_env(tmp_path),
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    raw = (
        b"before "
        + escapes.OSC52
        + b" "
        + escapes.TITLE
        + b" "
        + escapes.QUERY
        + b" "
        + escapes.C1_OSC
        + b" after\n"
        + escapes.COLOR
        + b"\n"
        + escapes.BAR
    )
    assert res.stdout == raw
    for job in (tmp_path / "jobs").iterdir():
        assert (job / "logs" / "th1.log").read_bytes() == raw


PLAIN_PLAYBOOK = """\
- name: Train
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the script and show its output
      ansible.builtin.include_role:
        name: remote_trainer.core.training_job
      vars:
        training_job_python: python3
        training_job:
          id: "{{ job_id }}"
          script: "{{ playbook_dir }}/long.py"
"""

PLAIN_SCRIPT = """\
import sys
sys.stdout.buffer.write(b"z" * (3 * 1024 * 1024 + 5) + b"\\r\\x1b[2Kafter\\n")
"""


def test_a_playbook_of_ones_own_shows_a_long_line_cut_with_the_marker(testhosts, tmp_path):
    # The plugin's own display (no driver, no relay records): the same rule, bounded and linear.
    (tmp_path / "site.yml").write_text(PLAIN_PLAYBOOK)
    (tmp_path / "long.py").write_text(PLAIN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="True", ANSIBLE_COLLECTIONS_PATH=str(REPO))
    res = subprocess.run(
        [
            str(Path(DRIVER).parent / "ansible-playbook"),
            "-i",
            str(testhosts.inventory_path),
            "--limit",
            "th1",
            "site.yml",
            "-e",
            f"job_id=plain-{os.getpid()}",
        ],
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0, out[-3000:] + res.stderr.decode(errors="replace")[-3000:]
    cut = CUT.decode()
    pieces = [line for line in out.split("\n") if line.startswith("[th1] zzz")]
    assert pieces[:3] == ["[th1] " + "z" * MIB + cut] * 3
    # The rest, a redraw ("\r", no newline), then the next line over it.
    assert pieces[3:] == ["[th1] zzzzz\r[th1] \x1b[2Kafter"]


FORGED_STREAM = r"""
import os, runpy, sys

if sys.argv[1] == "stream":
    if os.environ.get("FORGED", "{kind}") == "endless":
        while True:
            sys.stdout.buffer.write(b"x" * 65536)
    print("this is not JSON", flush=True)
    sys.exit(0)
sys.argv[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jobctl_real.py")
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("kind", ["endless", "not-json"])
def test_a_stream_that_is_not_jobctl_s_hands_over_to_polls(kind, testhosts, tmp_path):
    # Before (issue 28): an endless line filled the plugin's memory (searched again at every read), and a
    # line that is not JSON raised in the plugin: the task failed instead of the job's own exit code.
    job = ended_job_with_a_forged_jobctl(testhosts, tmp_path, FORGED_STREAM.replace("{kind}", kind))
    res = run_driver(["logs", "-f", job], tmp_path, timeout=120)
    assert res.returncode == 3, res.stderr
    assert res.stdout == "about to end\n"
    assert "Traceback" not in res.stderr
    left = testhosts.ssh("th1", "pgrep -f '[j]obctl.py stream' || true")
    assert left.stdout.strip() == "", left.stdout
