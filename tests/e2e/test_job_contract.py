"""Defects a new user hit (issue 12), each driven through the real `driver` command against real hosts."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from driverproc import (
    DRIVER,
    REPO,
    SCRIPTS,
    driver_env,
    error_lines,
    job_output,
    read_until,
    run_driver,
    start_driver,
)

HELLO = str(REPO / "examples" / "hello.py")


def job_dirs(testhosts, host: str, job: str) -> str:
    """What of the job's directory exists on the host ('' when none)."""
    return testhosts.ssh(host, f"ls -d ~/.remote-trainer/jobs/{job}* 2>/dev/null; true").stdout.strip()


def host_processes(testhosts, host: str, needle: str) -> str:
    return testhosts.ssh(host, f"pgrep -af '[{needle[0]}]{needle[1:]}' || true").stdout.strip()


def wait_for_the_end_on(testhosts, host: str, job: str) -> None:
    """Wait until the job has written its exit code on the host (no driver looks at it)."""
    deadline = time.monotonic() + 30
    while "rc" not in testhosts.ssh(host, f"ls ~/.remote-trainer/jobs/{job}").stdout:
        assert time.monotonic() < deadline, f"job {job} did not end on {host}"
        time.sleep(0.3)


# -- outputs are never lost ------------------------------------------------------------------------------
def test_clean_keeps_outputs_not_yet_copied_back_unless_forced(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th2"]
    tag = uuid.uuid4().hex[:8]
    res = run_driver(["train", "-d", str(SCRIPTS / "writes_outputs.py"), *inv, "--", tag, "ok"], tmp_path)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    # The job ends on the host; no driver has seen its end yet.
    wait_for_the_end_on(testhosts, "th2", job)
    cleaned = run_driver(["clean", *inv, "--older-than", "0"], tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert job in cleaned.stdout and "never copied back" in cleaned.stdout
    assert job_dirs(testhosts, "th2", job)
    # status brings them back and records the end; then clean may remove the job.
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"job {job}: ended, exit code 0" in status.stdout
    assert (tmp_path / "jobs" / job / "outputs" / "th2" / f"{tag}.txt").read_text() == tag + "\n"
    run_driver(["clean", *inv, "--older-than", "0"], tmp_path)
    assert not job_dirs(testhosts, "th2", job)


def test_clean_force_removes_uncollected_outputs(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th2"]
    res = run_driver(["train", "-d", str(SCRIPTS / "writes_outputs.py"), *inv, "--", "x", "ok"], tmp_path)
    job = res.stdout.strip()
    wait_for_the_end_on(testhosts, "th2", job)
    assert run_driver(["clean", *inv, "--older-than", "0", "--force"], tmp_path).returncode == 0
    assert not job_dirs(testhosts, "th2", job)


def test_relative_output_dir_is_relative_to_the_current_directory(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    res = subprocess.run(
        [DRIVER, "train", str(SCRIPTS / "writes_outputs.py"), "--output-dir", "out", "--", "rel", "ok"],
        capture_output=True,
        text=True,
        timeout=120,
        env=driver_env(tmp_path / "state"),
        cwd=work,
    )
    assert res.returncode == 0, res.stderr
    rel = job_output(work / "out", "localhost")
    assert (rel / "rel.txt").read_text() == "rel\n"
    # The end of a foreground train says where the outputs went.
    assert f"  outputs: {rel.parent}/<host>/" in res.stderr.splitlines()


@pytest.mark.parametrize("value", ["/tmp/abs", "../up", "a/../../b", "", "  "])
def test_invalid_output_is_refused_before_anything_starts(value, tmp_path):
    res = run_driver(["train", HELLO, "--output", value], tmp_path)
    assert res.returncode == 85, res.stderr
    assert len(error_lines(res.stderr)) == 1 and "--output" in res.stderr and "Traceback" not in res.stderr
    assert not list((tmp_path / "jobs").glob("*")) if (tmp_path / "jobs").exists() else True


# -- timeouts and Ctrl+C in every phase -------------------------------------------------------------------
def test_timeout_of_a_detached_job_holds_on_the_host_with_nothing_following(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(
        ["train", "-d", "--timeout", "3s", "--grace", "1s", str(SCRIPTS / "sleeper.py"), *inv, "--", tag],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    assert host_processes(testhosts, "th1", tag)
    deadline = time.monotonic() + 20
    while host_processes(testhosts, "th1", tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not host_processes(testhosts, "th1", tag), "the detached job ran past its --timeout"
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"job {job}: timeout, exit code 124" in status.stdout
    follow = run_driver(["logs", "-f", job], tmp_path)
    assert follow.returncode == 124


class HangingIndex:
    """A package index on loopback that accepts connections and never answers: pip waits (provisioning)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.connected.set()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def hanging_index():
    index = HangingIndex()
    yield index
    index.close()


def marker_script(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / f"started-{uuid.uuid4().hex}"
    script = tmp_path / "mark.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nprint('started')\n")
    return script, marker


def provisioning_args(index: HangingIndex) -> list[str]:
    # A package that is not installed here, from an index that never answers.
    return [
        "--packages",
        f"rt-never-{uuid.uuid4().hex[:6]}",
        "--index-url",
        f"http://127.0.0.1:{index.port}/simple",
    ]


def test_timeout_counts_provisioning_and_the_script_never_starts(hanging_index, tmp_path):
    script, marker = marker_script(tmp_path)
    started = time.monotonic()
    res = run_driver(
        ["train", str(script), *provisioning_args(hanging_index), "--timeout", "12s"], tmp_path / "s"
    )
    took = time.monotonic() - started
    assert res.returncode == 124, res.stderr
    assert took < 30, f"the timeout waited for provisioning ({took:.1f} s)"
    assert hanging_index.connected.is_set()
    assert not marker.exists(), "the script started after its timeout"
    assert "reached --timeout 12s" in res.stderr
    time.sleep(1)
    assert not marker.exists()


def test_ctrl_c_during_provisioning_stops_it_and_never_starts_the_script(hanging_index, tmp_path):
    script, marker = marker_script(tmp_path)
    proc = start_driver(["train", str(script), *provisioning_args(hanging_index)], tmp_path / "s")
    try:
        assert hanging_index.connected.wait(60), "pip never asked the index"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert took < 10, f"Ctrl+C waited for provisioning ({took:.1f} s)"
    time.sleep(1)
    assert not marker.exists(), "the script started after Ctrl+C"
    assert "started" not in out


def test_grace_zero_is_zero(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    started = time.monotonic()
    res = run_driver(
        ["train", str(SCRIPTS / "ignores_sigterm.py"), *inv, "--timeout", "2s", "--grace", "0", "--", tag],
        tmp_path,
    )
    took = time.monotonic() - started
    assert res.returncode == 124, res.stderr
    # With the old 10 s fallback the SIGKILL came 10 s after the SIGTERM.
    assert took < 8, f"--grace 0 took {took:.1f} s"
    assert not host_processes(testhosts, "th1", tag)


# -- multi-node: a failed preflight starts no rank ------------------------------------------------------
def test_versions_differing_on_one_rank_start_no_rank(start_testhosts, tmp_path):
    hs = start_testhosts(2)
    # th2's python sees a `torch` of its own: the versions differ between the ranks.
    hs.ssh(
        "th2",
        "mkdir -p ~/faketorch/torch && "
        "printf '__version__ = \"0.0.0-fake\"\\nclass cuda:\\n' > ~/faketorch/torch/__init__.py && "
        "printf '    is_available = staticmethod(lambda: False)\\n' >> ~/faketorch/torch/__init__.py && "
        "printf '#!/bin/sh\\nPYTHONPATH=$HOME/faketorch exec python3 \"$@\"\\n' > ~/py && chmod +x ~/py",
    )
    master = hs.container_ip("th1")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        hs.inventory_path.read_text()
        .replace("ansible_user=trainer", f"ansible_user=trainer train_master_addr={master}")
        .replace("th2 ansible_host", "th2 remote_host_python=/home/trainer/py ansible_host")
    )
    assert "remote_host_python" in inventory.read_text()
    res = run_driver(["train", HELLO, "-i", str(inventory), "--nodes", "2"], tmp_path)
    assert res.returncode == 81, res.stderr
    assert "versions differ" in error_lines(res.stderr)[0]
    job = next(p.name for p in (tmp_path / "jobs").iterdir())
    assert not job_dirs(hs, "th1", job) and not job_dirs(hs, "th2", job), "a rank started"
    assert "hello" not in res.stdout


def test_a_rank_that_cannot_reach_the_master_keeps_every_rank_from_starting(start_testhosts, tmp_path):
    hs = start_testhosts(2)
    master = hs.container_ip("th1")
    inventory = tmp_path / "inventory.ini"
    # th2 looks for the master on its own loopback: its preflight fails, rank 0's own part passes.
    lines = [
        line.replace("ansible_user=trainer", f"ansible_user=trainer train_master_addr={addr}")
        for line in hs.inventory_path.read_text().splitlines()
        for addr in [("127.0.0.1" if line.startswith("th2 ") else master)]
    ]
    inventory.write_text("\n".join(lines) + "\n")
    assert "train_master_addr=127.0.0.1" in inventory.read_text()
    res = run_driver(["train", HELLO, "-i", str(inventory), "--nodes", "2"], tmp_path)
    assert res.returncode == 81, res.stderr
    assert "th2 (rank 1): cannot reach MASTER_ADDR:MASTER_PORT 127.0.0.1" in error_lines(res.stderr)[0]
    job = next(p.name for p in (tmp_path / "jobs").iterdir())
    assert not job_dirs(hs, "th1", job), "rank 0 started although rank 1 failed its preflight"
    assert not job_dirs(hs, "th2", job)
    assert "hello" not in res.stdout


# -- records and messages ------------------------------------------------------------------------------
def test_cancel_of_an_ended_job_reports_its_end_and_changes_nothing(testhosts, tmp_path):
    res = run_driver(
        ["train", str(SCRIPTS / "exit_with.py"), "-i", str(testhosts.inventory_path), "-l", "th1", "--", "3"],
        tmp_path,
    )
    assert res.returncode == 3, res.stderr
    job = next(p.name for p in (tmp_path / "jobs").iterdir())
    before = (tmp_path / "jobs" / job / "job.json").read_text()
    cancel = run_driver(["cancel", job], tmp_path)
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.strip() == f"job {job}: already ended, exit code 3; nothing to cancel"
    assert (tmp_path / "jobs" / job / "job.json").read_text() == before


def test_status_of_a_job_that_never_started_reports_its_record(testhosts, tmp_path):
    inventory = tmp_path / "closed.ini"
    inventory.write_text("gone ansible_host=127.0.0.1 ansible_port=1\n")
    res = run_driver(["train", HELLO, "-i", str(inventory)], tmp_path)
    assert res.returncode == 70, res.stderr
    inventory.unlink()  # asking the host again would now fail (68)
    status = run_driver(["status", "last"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert ": failed" in status.stdout and "unreachable" in status.stdout
    jobs = run_driver(["jobs"], tmp_path)
    assert "unreachable" in jobs.stdout.splitlines()[-1]  # the reason of a failed job


def test_jobs_shows_the_hosts_of_a_running_job_and_an_abandoned_start(testhosts, hanging_index, tmp_path):
    tag = uuid.uuid4().hex
    proc = start_driver(
        ["train", str(SCRIPTS / "sleeper.py"), "-i", str(testhosts.inventory_path), "-l", "th1", "--", tag],
        tmp_path,
    )
    try:
        read_until(proc, f"sleeping {tag}")
        listing = run_driver(["jobs"], tmp_path).stdout.splitlines()
        assert "th1" in listing[-1] and "running" in listing[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    # A driver killed during provisioning leaves a job that never started: shown as abandoned.
    script, _ = marker_script(tmp_path)
    proc = start_driver(["train", str(script), *provisioning_args(hanging_index)], tmp_path)
    assert hanging_index.connected.wait(60)
    proc.kill()
    proc.communicate(timeout=30)
    last = run_driver(["jobs"], tmp_path).stdout.splitlines()[-1]
    assert " abandoned " in last and "mark.py" in last


def test_logs_of_a_cleaned_job_print_the_local_copy(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th2"]
    res = run_driver(["train", HELLO, *inv], tmp_path)
    assert res.returncode == 0, res.stderr
    job = next(p.name for p in (tmp_path / "jobs").iterdir())
    assert run_driver(["clean", *inv, "--older-than", "0"], tmp_path).returncode == 0
    assert not job_dirs(testhosts, "th2", job)
    logs = run_driver(["logs", job], tmp_path)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == res.stdout
    assert "copy of its log kept here" in logs.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["train", HELLO, "--epochs", "3"], 2, "put it after `--`"),
        (["train", HELLO, "--max-workdir-size", "lots"], 64, "--max-workdir-size"),
        (["train", HELLO, "-i", ","], 68, "names no host"),
        (["train", HELLO, "--limit", "gpu1"], 69, "give an inventory with -i"),
        (["train", HELLO, "--grace", "soon"], 64, "--grace"),
    ],
)
def test_clear_messages_for_common_slips(args, code, words, tmp_path):
    res = run_driver(args, tmp_path)
    assert res.returncode == code, res.stderr
    assert words in res.stderr
    assert "--detach" not in res.stderr and "Traceback" not in res.stderr


def test_a_closed_stdout_ends_quietly(tmp_path):
    assert run_driver(["train", "-d", HELLO], tmp_path).returncode == 0
    # Enough records that `driver jobs` writes more than a pipe holds after `head` has gone.
    record = next((tmp_path / "jobs").glob("*/job.json"))
    for i in range(3000):
        copy = tmp_path / "jobs" / f"20000101-000000-{i:06x}"
        copy.mkdir()
        (copy / "job.json").write_text(record.read_text().replace(record.parent.name, copy.name))
    env = driver_env(tmp_path)
    res = subprocess.run(
        f"{DRIVER} jobs | head -1", shell=True, capture_output=True, text=True, env=env, timeout=60
    )
    assert res.stderr == "" and res.stdout.startswith("JOB")


def test_the_first_line_of_provisioning_comes_before_pip_starts(hanging_index, tmp_path):
    script, _ = marker_script(tmp_path)
    proc = start_driver(["train", str(script), *provisioning_args(hanging_index)], tmp_path)
    try:
        started = time.monotonic()
        first = read_until(proc, "", timeout=15, stream="stderr")[0]
        took = time.monotonic() - started
        assert "installing 1 requirements (rt-never-" in first, first
        assert took < 15, f"the first line came after {took:.1f} s"
        assert hanging_index.connected.wait(60)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        finally:
            proc.kill()
