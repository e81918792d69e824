"""Jobs that outlive the terminal: detach, reattach, cancel, outputs on every ending, clean, staging."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from driverproc import (
    DRIVER,
    SCRIPTS,
    error_lines,
    job_output,
    read_until,
    run_driver,
    start_driver,
    wait_until_no_local_processes_match,
)

from driver.job import staging


def job_ids(state) -> list[str]:
    return sorted(p.name for p in (state / "jobs").iterdir() if (p / "job.json").exists())


def record(state, job_id: str) -> dict:
    return json.loads((state / "jobs" / job_id / "job.json").read_text())


def test_killed_driver_leaves_the_job_running_and_logs_follow_reattaches(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    tag = uuid.uuid4().hex[:8]
    proc = start_driver(["train", str(SCRIPTS / "counter.py"), *inv, "--", "30", "0.2", "7", tag], tmp_path)
    try:
        read_until(proc, "line 3")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert testhosts.pids_matching("th1", f"counter.py 30 0.2 7 {tag}"), "the job died with the driver"
    # Nothing of the driver is left here: its ansible-playbook ends with it.
    assert wait_until_no_local_processes_match(str(tmp_path)) == []
    (job,) = job_ids(tmp_path)
    res = run_driver(["logs", "-f", job], tmp_path)
    assert res.returncode == 7, res.stderr
    assert res.stdout.splitlines() == [f"line {i}" for i in range(30)] + ["end"]
    rec = record(tmp_path, job)
    assert rec["state"] == "ended" and rec["exit_code"] == 7
    assert (tmp_path / "jobs" / job / "outputs" / "th1" / "done.txt").read_text() == "done\n"


def test_ctrl_c_stops_following_and_the_job_goes_on(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    tag = uuid.uuid4().hex[:8]
    job = run_driver(["train", "-d", str(SCRIPTS / "sleeper.py"), *inv, "--", tag], tmp_path).stdout.strip()
    follow = start_driver(["logs", "-f", job], tmp_path)
    try:
        read_until(follow, "sleeping")
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert follow.returncode == 130, err
    assert error_lines(err) == [f"error: interrupted (SIGINT); job {job} itself goes on"], err
    assert "Traceback" not in err
    assert wait_until_no_local_processes_match(str(tmp_path)) == []
    assert testhosts.pids_matching("th1", f"sleeper.py {tag}"), "the job stopped with the follower"
    assert run_driver(["cancel", job, "--grace", "1s"], tmp_path).returncode == 0


def test_detach_status_logs_and_jobs(testhosts, tmp_path):
    res = run_driver(
        [
            "train",
            "-d",
            str(SCRIPTS / "counter.py"),
            "-i",
            str(testhosts.inventory_path),
            "--",
            "10",
            "0.3",
            "0",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    assert job_ids(tmp_path) == [job]
    status = run_driver(["status", job[:12]], tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"job {job}: running" in status.stdout
    assert "th1: running" in status.stdout and "th2: running" in status.stdout

    now = run_driver(["logs", job, "--host", "th2"], tmp_path)
    assert now.returncode == 0, now.stderr
    assert now.stdout.startswith("line 0\n")

    follow = run_driver(["logs", "-f", job], tmp_path)
    assert follow.returncode == 0, follow.stderr
    lines = follow.stdout.splitlines()
    for host in ("th1", "th2"):
        assert [line for line in lines if line.startswith(f"[{host}]")] == [
            f"[{host}] line {i}" for i in range(10)
        ] + [f"[{host}] end"]
    listing = run_driver(["jobs"], tmp_path).stdout.splitlines()
    assert listing[0].split()[:4] == ["JOB", "SCRIPT", "HOSTS", "STATE"]
    assert listing[1].split()[:4] == [job, "counter.py", "th1,th2", "ended"]
    assert listing[1].split()[-1] == "0"


@pytest.mark.parametrize("ending", ["success", "failure", "timeout", "cancel"])
def test_outputs_come_back_on_every_ending(ending, testhosts, tmp_path):
    out = tmp_path / "out"
    mode = {"success": "ok", "failure": "fail", "timeout": "sleep", "cancel": "sleep"}[ending]
    args = [
        "train",
        str(SCRIPTS / "writes_outputs.py"),
        "-i",
        str(testhosts.inventory_path),
        "-l",
        "th1",
        "--output-dir",
        str(out),
        "--grace",
        "2s",
    ]
    if ending == "timeout":
        args += ["--timeout", "3s"]
    if ending == "cancel":
        res = run_driver([*args[:1], "-d", *args[1:], "--", ending, mode], tmp_path)
        job = res.stdout.strip()
        deadline = time.monotonic() + 30
        while "wrote" not in run_driver(["logs", job], tmp_path).stdout and time.monotonic() < deadline:
            time.sleep(0.5)
        res = run_driver(["cancel", job, "--grace", "2s"], tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == f"job {job}: cancelled, exit code 143"
        assert testhosts.pids_matching("th1", "writes_outputs.py cancel") == []
    else:
        res = run_driver([*args, "--", ending, mode], tmp_path)
        assert res.returncode == {"success": 0, "failure": 4, "timeout": 124}[ending], res.stderr
    assert (job_output(out, "th1") / f"{ending}.txt").read_text() == f"{ending}\n"


def test_outputs_from_this_machine_need_no_rsync(tmp_path):
    """The default (no inventory) copies outputs without rsync: here PATH has everything but rsync."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if tool.name != "rsync":
            (bin_dir / tool.name).symlink_to(tool)
    out = tmp_path / "out"
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "writes_outputs.py"),
            "--no-provision",
            "--output-dir",
            str(out),
            "--",
            "here",
            "ok",
        ],
        tmp_path,
        extra_env={"PATH": f"{Path(DRIVER).parent}:{bin_dir}"},
    )
    assert res.returncode == 0, res.stderr
    assert (job_output(out, "localhost") / "here.txt").read_text() == "here\n"


def test_a_host_without_rsync_keeps_the_exit_code_and_status_copies_the_outputs_later(testhosts, tmp_path):
    out = tmp_path / "out"
    args = ["train", str(SCRIPTS / "writes_outputs.py"), "-i", str(testhosts.inventory_path), "-l", "th2"]
    rsync = testhosts.exec("th2", ["sh", "-c", "command -v rsync"]).stdout.strip()
    testhosts.exec("th2", ["mv", rsync, rsync + ".off"])
    try:
        ok = run_driver([*args, "--output-dir", str(out), "--", "kept", "ok"], tmp_path)
        failed = run_driver([*args, "--output-dir", str(tmp_path / "out2"), "--", "lost", "fail"], tmp_path)
    finally:
        testhosts.exec("th2", ["mv", rsync + ".off", rsync])
    # Said before the script starts, then: the script succeeded but its outputs did not come back: 84,
    # one line naming the host and rsync.
    assert "warning: th2 has no rsync: what the script writes to outputs/ cannot be copied back" in ok.stderr
    assert ok.returncode == 84, ok.stderr
    (line,) = error_lines(ok.stderr)
    assert line.startswith("error: the outputs of th2 were not copied back:") and "rsync" in line, line
    assert "Traceback" not in ok.stderr
    # A failing script keeps its own exit code; the copy failure is still said.
    assert failed.returncode == 4, failed.stderr
    assert "error: the outputs of th2 were not copied back" in failed.stderr
    (job,) = [j for j in job_ids(tmp_path) if record(tmp_path, j)["output_dir"] == str(out / j)]
    rec = record(tmp_path, job)
    assert rec["exit_code"] == 0 and rec["outputs_synced"] is False
    assert not (out / job / "th2" / "kept.txt").exists()
    # With rsync back, `status` brings them over, once.
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"outputs: {out / job}" in status.stdout
    assert (out / job / "th2" / "kept.txt").read_text() == "kept\n"
    assert record(tmp_path, job)["outputs_synced"] is True


def test_ten_concurrent_jobs_on_one_host(testhosts, tmp_path):
    procs = [
        start_driver(
            [
                "train",
                str(SCRIPTS / "writes_outputs.py"),
                "-i",
                str(testhosts.inventory_path),
                "-l",
                "th1",
                "--output-dir",
                str(tmp_path / f"out{i}"),
                "--",
                f"tag{i}",
                "ok",
            ],
            tmp_path,
        )
        for i in range(10)
    ]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    for i, ((out, err), code) in enumerate(results):
        assert code == 0, err
        assert out == f"wrote tag{i}\n"
        assert sorted(p.name for p in job_output(tmp_path / f"out{i}", "th1").iterdir()) == [f"tag{i}.txt"]
    assert len(job_ids(tmp_path)) == 10


def test_a_lost_job_is_reported_as_lost(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    res = run_driver(
        [
            "train",
            "-d",
            str(SCRIPTS / "sleeper.py"),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--",
            tag,
        ],
        tmp_path,
    )
    job = res.stdout.strip()
    # Kill the job and its launcher from outside, so that nobody writes an exit code.
    # ([x]yz patterns do not match the pkill command line itself.)
    testhosts.ssh("th1", f"pkill -9 -f '[j]obctl.py launch .*{job}'; pkill -9 -f '[{tag[0]}]{tag[1:]}'; true")
    time.sleep(1.5)
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 79, status.stderr
    assert f"job {job}: lost" in status.stdout
    follow = run_driver(["logs", "-f", job], tmp_path)
    assert follow.returncode == 79
    assert "lost" in error_lines(follow.stderr)[0]


def test_clean_removes_ended_jobs_and_keeps_running_ones(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th2"]
    assert run_driver(["train", str(SCRIPTS / "exit_with.py"), *inv, "--", "0"], tmp_path).returncode == 0
    ended = next(p.name for p in (tmp_path / "jobs").iterdir())
    tag = uuid.uuid4().hex
    running = run_driver(
        ["train", "-d", str(SCRIPTS / "sleeper.py"), *inv, "--", tag], tmp_path
    ).stdout.strip()
    res = run_driver(["clean", *inv, "--older-than", "0s"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("th2: removed ")
    left = testhosts.ssh("th2", "ls ~/.remote-trainer/jobs").stdout.split()
    assert running in left and ended not in left
    run_driver(["cancel", running, "--grace", "1s"], tmp_path)


def test_workdir_staging_honours_ignores_and_follows_changes(testhosts, tmp_path):
    work = tmp_path / "project"
    (work / "data").mkdir(parents=True)
    (work / "cache").mkdir()
    (work / "cache" / "big.bin").write_bytes(b"x" * 1000)
    (work / "data" / "a.txt").write_text("one\n")
    (work / "secret.env").write_text("TOKEN=1\n")
    (work / ".gitignore").write_text("*.env\n")
    (work / ".driverignore").write_text("cache/\n")
    (work / "show.py").write_text(
        "import os\nfor root, dirs, files in sorted(os.walk('.')):\n    for f in sorted(files):\n"
        "        path = os.path.join(root, f)\n        print(path, open(path).read().strip())\n"
    )
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1", "--workdir", str(work), "--output", "none"]
    first = run_driver(["train", str(work / "show.py"), *inv], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "./data/a.txt one" in first.stdout
    assert "secret.env" not in first.stdout and "big.bin" not in first.stdout
    (work / "data" / "a.txt").write_text("two\n")
    second = run_driver(["train", str(work / "show.py"), *inv], tmp_path)
    assert "./data/a.txt two" in second.stdout


def test_an_unchanged_workdir_starts_without_rsync_and_a_changed_one_is_staged_again(testhosts, tmp_path):
    """The mirror's manifest (the driver's listing: names, modes, sizes, mtimes) decides: the same listing
    starts the job in one step from the mirror; a changed file, or a mirror whose manifest is gone (staging
    removes it before rsync touches the mirror), is staged with rsync again."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "a.txt").write_text("one\n")
    (work / "show.py").write_text("print(open('a.txt').read().strip())\n")
    argv = ["train", "-v", str(work / "show.py"), "-i", str(testhosts.inventory_path), "-l", "th2"]
    argv += ["--workdir", str(work), "--output", "none"]
    mirror = "TASK Training job | Mirror the working directory (rsync, only what changed)"

    def run() -> tuple[str, bool]:
        res = run_driver(argv, tmp_path)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip(), mirror in res.stderr

    assert run() == ("one", True)  # first: rsync
    assert run() == ("one", False)  # unchanged: the mirror as it is
    (work / "a.txt").write_text("two\n")  # same size: the mtime tells
    assert run() == ("two", True)
    assert run() == ("two", False)
    stage = f"~/.remote-trainer/stage/{staging.plan(work, work / 'show.py', 1 << 30).key}"
    # Changed on the host behind the driver's back, its manifest gone: rsync puts the workdir back.
    testhosts.ssh("th2", f"rm {stage}.manifest && echo x > {stage}/a.txt")
    assert run() == ("two", True)
    # A manifest that does not match (another listing's, or a stale one): rsync.
    testhosts.ssh("th2", f"echo other > {stage}.manifest")
    assert run() == ("two", True)
    assert run() == ("two", False)


def test_workdir_over_the_size_limit_is_refused(tmp_path):
    work = tmp_path / "big"
    work.mkdir()
    (work / "data.bin").write_bytes(b"\0" * 3_000_000)
    (work / "run.py").write_text("print('hi')\n")
    res = run_driver(
        ["train", str(work / "run.py"), "--workdir", str(work), "--max-workdir-size", "1M"], tmp_path
    )
    assert res.returncode == 77
    (line,) = error_lines(res.stderr)
    assert "2.9 MiB" in line and "1.0 MiB" in line
    assert ".driverignore" in res.stderr


def test_sync_every_brings_outputs_back_while_the_job_runs(testhosts, tmp_path):
    script = tmp_path / "slow_writer.py"
    script.write_text(
        "import time\nopen('outputs/early.txt', 'w').write('early\\n')\nprint('wrote early', flush=True)\n"
        "time.sleep(12)\nopen('outputs/late.txt', 'w').write('late\\n')\n"
    )
    out = tmp_path / "out"
    proc = start_driver(
        [
            "train",
            str(script),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--output-dir",
            str(out),
            "--sync-every",
            "2s",
        ],
        tmp_path,
    )
    try:
        read_until(proc, "wrote early")
        deadline = time.monotonic() + 10
        while not (job_output(out, "th1") / "early.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert (job_output(out, "th1") / "early.txt").read_text() == "early\n", "not synced while running"
        assert proc.poll() is None and not (job_output(out, "th1") / "late.txt").exists()
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert (job_output(out, "th1") / "late.txt").read_text() == "late\n"
