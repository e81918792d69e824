"""jobctl.py, the host-side helper, run for real as a subprocess against job directories in tmp_path.

Each job directory is built like the training_job action plugin builds it (JOB/work/ with the script,
JOB/.rt/spec.json), then started with `jobctl.py launch JOB`. No mocks: real processes, real signals.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

JOBCTL = (
    Path(__file__).resolve().parents[2]
    / "ansible_collections/remote_trainer/core/roles/training_job/files/jobctl.py"
)
PY = shutil.which("python3") or sys.executable

PRINTS = r"""
import os, sys
print("hello", *sys.argv[1:])
print(os.environ["RT_TEST_VALUE"], file=sys.stderr)
sys.stdout.buffer.write(b"\xff\x00raw\n")
"""

SLEEPS = """
import time
print("ready", flush=True)
time.sleep(600)
"""

IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(600)
"""

# Leaves two children behind: one in its own process group (which the group signal misses) that also
# ignores SIGTERM, and one in the script's group. Both must end with the job.
LEAVES_CHILDREN = """
import os, subprocess, sys
stubborn = subprocess.Popen(
    [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
     "print('child ready', flush=True); time.sleep(600)"],
    preexec_fn=os.setpgrp,
)
plain = subprocess.Popen(["sleep", "600"])
with open("children", "w") as f:
    f.write(f"{stubborn.pid} {plain.pid}")
import time
deadline = time.time() + 10
while b"child ready" not in open("../log", "rb").read() and time.time() < deadline:
    time.sleep(0.02)
print("parent done", flush=True)
"""

WRITES_OUTPUTS = """
import pathlib
pathlib.Path("outputs/model.txt").write_text("weights")
"""


def jobctl(*args: object) -> dict:
    res = subprocess.run(
        [PY, "-S", str(JOBCTL), *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session sid."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in "ZX" and int(fields[3]) == sid:
            pids.append(int(name))
    return pids


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_for(cond, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_end(job: Path, timeout: float = 15.0) -> dict:
    """Wait for the job's rc with `status` calls only (nothing follows the log)."""
    return wait_for(lambda: (st := jobctl("status", job))["rc"] is not None and st, timeout, "the job's end")


def wait_log(job: Path, text: bytes) -> None:
    log = job / "log"
    wait_for(lambda: log.exists() and text in log.read_bytes(), what=f"{text!r} in the log")


def assert_session_gone(launcher: int) -> None:
    wait_for(lambda: not session_pids(launcher), timeout=10, what=f"session {launcher} to empty")


class Jobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.launched: list[Path] = []

    def make(self, name: str, source: str, args: tuple[str, ...] = (), **spec: object) -> Path:
        job = self.root / name
        (job / "work").mkdir(parents=True, mode=0o700)
        (job / ".rt").mkdir(mode=0o700)
        (job / "work" / "script.py").write_text(source)
        full = {"argv": [PY, "script.py", *args], "env": {"RT_TEST_VALUE": "secret"}, "output": "", **spec}
        (job / ".rt" / "spec.json").write_text(json.dumps(full))
        return job

    def launch(self, name: str, source: str, args: tuple[str, ...] = (), **spec: object) -> tuple[Path, dict]:
        job = self.make(name, source, args, **spec)
        info = jobctl("launch", job)
        self.launched.append(job)
        return job, info


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Jobs]:
    j = Jobs(tmp_path / "jobs")
    j.root.mkdir()
    yield j
    for job in j.launched:  # nothing of a failed test keeps running
        if (job / ".rt").is_dir() and not (job / "rc").exists():
            jobctl("kill", job, 0)


def test_launch_then_poll_to_the_end(jobs: Jobs) -> None:
    job, info = jobs.launch("j1", PRINTS, args=("a", "b"))
    assert info["job"] == str(job)
    assert info["launcher"] > 0 and info["pgid"] > 0
    assert not (job / ".rt" / "spec.json").exists()  # the env values do not stay on disk
    data, offset = b"", 0
    deadline = time.monotonic() + 15
    while True:
        st = jobctl("poll", job, offset, 1.0, 65536)
        assert st["offset"] == offset
        chunk = base64.b64decode(st["data"])
        assert len(chunk) == st["n"]
        data += chunk
        offset += st["n"]
        if st["eof"]:
            break
        assert time.monotonic() < deadline
    assert data == b"hello a b\nsecret\n\xff\x00raw\n"
    assert st["rc"] == 0 and st["size"] == len(data)
    assert st["stopped"] is None and st["collect"] is False and st["collected"] is False
    assert st["started"] and st["ended"]
    assert_session_gone(info["launcher"])


def test_stream_relays_each_batch_as_it_comes_and_ends_with_the_job(jobs: Jobs) -> None:
    """`stream JOB OFFSET WAIT MAXBYTES`: one process, a line per batch (read while the script still runs),
    a line at least every WAIT s, the last one at the end; together every byte once, in order."""
    ticks = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)\n"
    job, _ = jobs.launch("js", ticks)
    proc = subprocess.Popen(
        [PY, "-S", str(JOBCTL), "stream", str(job), "0", "0.2", "65536"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["rc"] is None and base64.b64decode(first["data"]) == b"0\n"  # before the script ended
    states = [first, *(json.loads(line) for line in proc.stdout)]
    assert proc.wait(timeout=15) == 0
    assert states[-1]["eof"] and states[-1]["rc"] == 0 and not any(st["eof"] for st in states[:-1])
    assert b"".join(base64.b64decode(st["data"]) for st in states) == b"0\n1\n2\n"
    assert any(st["n"] == 0 for st in states)  # quiet spells of more than WAIT s still say how the job is
    offsets = [st["offset"] for st in states]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_launch_with_its_first_poll_in_the_same_call(jobs: Jobs) -> None:
    """`launch JOB --poll WAIT MAXBYTES`: the launch's line, then the first poll's, from one process."""
    job = jobs.make("j0", PRINTS, args=("x",))
    jobs.launched.append(job)
    res = subprocess.run(
        [PY, "-S", str(JOBCTL), "launch", str(job), "--poll", "5", "65536"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    launched, polled = (json.loads(line) for line in res.stdout.splitlines())
    assert launched["job"] == str(job) and launched["pgid"] > 0
    assert polled["offset"] == 0 and polled["n"] > 0  # answered as soon as the script printed
    assert base64.b64decode(polled["data"]).startswith(b"hello x\n")


@pytest.mark.parametrize(
    ("code", "rc"),
    [
        ("sys.exit(0)", 0),
        ("sys.exit(3)", 3),
        ("os.kill(os.getpid(), signal.SIGKILL)", 137),
        ("os.kill(os.getpid(), signal.SIGUSR1)", 128 + 10),
    ],
)
def test_exit_codes(jobs: Jobs, code: str, rc: int) -> None:
    job, _ = jobs.launch("j", f"import os, signal, sys\n{code}\n")
    st = wait_end(job)
    assert st["rc"] == rc
    assert (job / "rc").read_text() == str(rc)
    assert st["stopped"] is None


def test_unstartable_script_gives_127(jobs: Jobs) -> None:
    job = jobs.make("j", "")
    (job / ".rt" / "spec.json").write_text(json.dumps({"argv": ["/nonexistent/python"]}))
    jobctl("launch", job)
    st = wait_end(job)
    assert st["rc"] == 127
    assert b"cannot start /nonexistent/python" in (job / "log").read_bytes()


def test_kill_with_reason_sigkills_after_grace(jobs: Jobs) -> None:
    job, info = jobs.launch("j", IGNORES_SIGTERM)
    wait_log(job, b"ready")
    t0 = time.monotonic()
    st = jobctl("kill", job, 0.5, "preempted")
    assert st["signalled"] is True
    assert st["stopped"] == "preempted"
    end = wait_end(job)
    assert time.monotonic() - t0 >= 0.45  # SIGTERM was ignored: only the reaper's SIGKILL ended it
    assert end["rc"] == 137
    assert end["stopped"] == "preempted"
    assert (job / ".rt" / "stopped").read_text() == "preempted"
    assert_session_gone(info["launcher"])


def test_kill_default_reason_and_sigterm(jobs: Jobs) -> None:
    job, info = jobs.launch("j", SLEEPS)
    wait_log(job, b"ready")
    st = jobctl("kill", job, 5)
    assert st["signalled"] is True and st["stopped"] == "cancelled"
    end = wait_end(job, timeout=4)  # SIGTERM suffices: well before the grace
    assert end["rc"] == 143 and end["stopped"] == "cancelled"
    assert_session_gone(info["launcher"])


def test_kill_of_an_ended_job_writes_no_reason(jobs: Jobs) -> None:
    job, _ = jobs.launch("j", "print('done')\n")
    wait_end(job)
    st = jobctl("kill", job, 0.5, "late")
    assert st["signalled"] is False
    assert st["stopped"] is None and st["rc"] == 0
    assert not (job / ".rt" / "stopped").exists()


def test_kill_rejects_a_reason_that_is_not_one_word(jobs: Jobs) -> None:
    job, _ = jobs.launch("j", "print('done')\n")
    res = subprocess.run([PY, "-S", str(JOBCTL), "kill", str(job), "1", "two words"], capture_output=True)
    assert res.returncode != 0


def test_timeout_with_nobody_watching(jobs: Jobs) -> None:
    t0 = time.monotonic()
    job, info = jobs.launch("j", IGNORES_SIGTERM, timeout=0.5, grace=0.5)
    st = wait_end(job)
    assert time.monotonic() - t0 >= 0.95  # timeout, then the grace for the ignored SIGTERM
    assert st["rc"] == 137
    assert st["stopped"] == "timeout"
    assert st["ended"]
    assert_session_gone(info["launcher"])


def test_timeout_sigterm_ends_a_polite_script(jobs: Jobs) -> None:
    job, info = jobs.launch("j", SLEEPS, timeout=0.3, grace=5)
    st = wait_end(job, timeout=4)  # it ends on SIGTERM: nothing waits for the grace
    assert st["rc"] == 143 and st["stopped"] == "timeout"
    assert_session_gone(info["launcher"])


def test_script_ending_before_the_timeout_is_unaffected(jobs: Jobs) -> None:
    job, _ = jobs.launch("j", "import sys; print('quick'); sys.exit(4)\n", timeout=30, grace=0.5)
    st = wait_end(job, timeout=10)
    assert st["rc"] == 4 and st["stopped"] is None
    assert (job / "log").read_bytes() == b"quick\n"


def test_kill_before_the_timeout_keeps_its_reason(jobs: Jobs) -> None:
    job, info = jobs.launch("j", IGNORES_SIGTERM, timeout=0.5, grace=0.2)
    wait_log(job, b"ready")
    st = jobctl("kill", job, 1.5, "first")
    assert st["stopped"] == "first"
    end = wait_end(job)
    assert end["rc"] == 137
    assert end["stopped"] == "first"  # the timeout that fired meanwhile did not relabel it
    assert_session_gone(info["launcher"])


def test_kill_after_the_timeout_fired_keeps_timeout(jobs: Jobs) -> None:
    job, info = jobs.launch("j", IGNORES_SIGTERM, timeout=0.2, grace=1.5)
    wait_for(lambda: jobctl("status", job)["stopped"] == "timeout", what="the timeout")
    st = jobctl("kill", job, 5, "late")
    assert st["signalled"] is True  # still running (in the timeout's grace)
    assert st["stopped"] == "timeout"
    end = wait_end(job)
    assert end["rc"] == 137 and end["stopped"] == "timeout"
    assert_session_gone(info["launcher"])


def test_children_that_outlive_the_script_are_ended(jobs: Jobs) -> None:
    job, info = jobs.launch("j", LEAVES_CHILDREN)
    st = wait_end(job)
    assert st["rc"] == 0
    children = [int(x) for x in (job / "work" / "children").read_text().split()]
    assert len(children) == 2
    assert_session_gone(info["launcher"])
    assert not any(pid_alive(pid) for pid in children)


def test_collected_marks_the_job(jobs: Jobs) -> None:
    job, _ = jobs.launch("j", WRITES_OUTPUTS, output="outputs", collect=True)
    st = wait_end(job)
    assert st["collect"] is True and st["outputs"] is True and st["collected"] is False
    st = jobctl("collected", job)
    assert st["collected"] is True and st["rc"] == 0
    assert (job / ".rt" / "collected").exists()
    assert jobctl("status", job)["collected"] is True


def test_clean(jobs: Jobs) -> None:
    running, _ = jobs.launch("running", SLEEPS, output="outputs", collect=True)
    plain, _ = jobs.launch("plain", "print('x')\n")
    uncollected, _ = jobs.launch("uncollected", WRITES_OUTPUTS, output="outputs", collect=True)
    forced, _ = jobs.launch("forced", WRITES_OUTPUTS, output="outputs", collect=True)
    empty, _ = jobs.launch("empty", "print('no outputs')\n", output="outputs", collect=True)
    nocollect, _ = jobs.launch("nocollect", WRITES_OUTPUTS, output="outputs")
    for job in (plain, uncollected, forced, empty, nocollect):
        wait_end(job)
    wait_log(running, b"ready")
    root = jobs.root

    young = jobctl("clean", root, 3600)
    assert young == {"job": str(root), "removed": [], "kept": 6, "uncollected": [], "partial": []}

    out = jobctl("clean", root, 0)
    assert out["removed"] == ["empty", "nocollect", "plain"]
    assert out["uncollected"] == ["forced", "uncollected"]
    assert out["kept"] == 3
    assert sorted(p.name for p in root.iterdir()) == ["forced", "running", "uncollected"]

    jobctl("collected", uncollected)
    out = jobctl("clean", root, 0)
    assert out["removed"] == ["uncollected"]
    assert out["uncollected"] == ["forced"] and out["kept"] == 2

    out = jobctl("clean", root, 0, "force")
    assert out["removed"] == ["forced"]
    assert out["uncollected"] == [] and out["kept"] == 1
    assert [p.name for p in root.iterdir()] == ["running"]
    assert jobctl("status", running)["rc"] is None  # a running job is never removed


def test_a_launch_cut_short_loses_its_spec_then_its_directory(jobs: Jobs) -> None:
    """A job whose launch never ran (the connection lost after the payload was unpacked): its spec (env
    values) goes at the next clean once the launch is a minute old, whatever the age asked; the directory
    goes when it is older than the age, counted from the launch (it has no start and no end)."""
    fresh = jobs.make("fresh", "print('x')\n")
    (fresh / ".rt" / "jobctl.py").write_text("")
    cut = jobs.make("cut", "print('x')\n")
    (cut / ".rt" / "jobctl.py").write_text("")
    two_min_ago = time.time() - 120
    os.utime(cut / ".rt" / "jobctl.py", (two_min_ago, two_min_ago))

    out = jobctl("clean", jobs.root, 3600)
    assert out["removed"] == [] and out["kept"] == 2
    assert not (cut / ".rt" / "spec.json").exists()
    assert (fresh / ".rt" / "spec.json").exists()  # a launch may be under way

    out = jobctl("clean", jobs.root, 90)
    assert out["removed"] == ["cut"] and out["kept"] == 1


def test_clean_of_a_missing_root(tmp_path: Path) -> None:
    out = jobctl("clean", tmp_path / "nothing", 0)
    assert out == {
        "job": str(tmp_path / "nothing"),
        "removed": [],
        "kept": 0,
        "uncollected": [],
        "partial": [],
    }


def test_status_of_a_missing_job(tmp_path: Path) -> None:
    st = jobctl("status", tmp_path / "nojob")
    assert st["missing"] is True and st["rc"] is None and st["stopped"] is None
