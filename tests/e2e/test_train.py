"""`driver train` against real hosts: this machine (local connection) and sshd containers over SSH."""

from __future__ import annotations

import json
import re
import signal
import time
import uuid

import pytest
from driverproc import (
    REPO,
    SCRIPTS,
    error_lines,
    local_processes_matching,
    read_until,
    run_driver,
    start_driver,
)

HELLO = str(REPO / "examples" / "hello.py")


def test_hello_on_this_machine(tmp_path):
    res = run_driver(["train", HELLO], tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("hello from ")
    assert lines[-1] == "done"
    # stderr holds only the summary: why it ended, each host's code and time.
    summary = res.stderr.splitlines()
    assert re.fullmatch(r"job \d{8}-\d{6}-[0-9a-f]{6}: succeeded in \d+\.\d s", summary[0]), res.stderr
    assert re.fullmatch(r"  localhost: exit code 0, ran \d+\.\d s", summary[1]), res.stderr
    assert len(summary) == 2


def test_hello_on_a_container_host(testhosts, tmp_path):
    res = run_driver(["train", HELLO, "-i", str(testhosts.inventory_path), "--limit", "th1"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("hello from th1 ")
    assert res.stdout.splitlines()[-1] == "done"


def test_first_line_arrives_while_the_script_runs(testhosts, tmp_path):
    marker = f"/tmp/marker-{uuid.uuid4().hex}"
    proc = start_driver(
        [
            "train",
            str(SCRIPTS / "wait_marker.py"),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--",
            marker,
        ],
        tmp_path,
    )
    try:
        read_until(proc, "ready", timeout=60)
        # The script only goes on once the marker exists, so 'ready' was relayed while it ran.
        testhosts.ssh("th1", ["touch", marker])
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["got marker"]


NASTY = [
    "two words",
    "it's",
    'say "hi"',
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "a; touch /tmp/pwned",
    "*",
    "line1\nline2",
    "",
    "--flag=value with spaces",
    "ünïcødé",
    "back\\slash",
    "$HOME",
]


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_arguments_and_env_reach_the_script_unchanged(where, testhosts, tmp_path):
    env_args = []
    env_expected = {}
    for i, value in enumerate(NASTY):
        env_args += ["--env", f"V{i}={value}"]
        env_expected[f"V{i}"] = value
    names = ",".join(env_expected)
    target = ["-i", str(testhosts.inventory_path), "-l", "th1"] if where == "ssh" else []
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "echo_args.py"),
            *target,
            "--env",
            f"ECHO_ENV_NAMES={names}",
            *env_args,
            "--",
            *NASTY,
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["args"] == NASTY
    assert got["env"] == env_expected
    if where == "ssh":
        assert testhosts.ssh("th1", "ls /tmp/pwned", check=False).returncode != 0


def test_env_values_stay_out_of_argv_and_artifacts(testhosts, tmp_path):
    """`--env NAME` takes the value from the driver's environment: it is in no argv, file or artifact."""
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "echo_args.py"),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--env",
            "TOKEN",
            "--env",
            "ECHO_ENV_NAMES=TOKEN",
        ],
        tmp_path,
        extra_env={"TOKEN": secret},
    )
    assert res.returncode == 0, res.stderr
    assert secret in res.stdout  # the script got it...
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.name.endswith(
            ".log"
        ):  # ...the relayed output copy holds what it printed
            assert secret not in path.read_text(errors="replace"), path
    job_dirs = testhosts.ssh("th1", "grep -rl " + secret + " ~/.remote-trainer/jobs/*/.rt || true").stdout
    assert job_dirs.strip() == ""


@pytest.mark.parametrize(("args", "code"), [(["0"], 0), (["3"], 3), (["signal", "SIGKILL"], 137)])
def test_exit_code_of_the_script_is_the_drivers(args, code, testhosts, tmp_path):
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "exit_with.py"),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--",
            *args,
        ],
        tmp_path,
    )
    assert res.returncode == code, res.stderr
    assert res.stdout.splitlines() == ["about to end"]


def test_timeout_stops_the_job_and_exits_124(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    start = time.monotonic()
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "sleeper.py"),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--timeout",
            "3s",
            "--grace",
            "2s",
            "--",
            tag,
        ],
        tmp_path,
    )
    assert res.returncode == 124, res.stderr
    assert f"sleeping {tag}" in res.stdout
    assert time.monotonic() - start < 30
    # A line says so (the code alone did before), and the summary says why the job ended.
    assert error_lines(res.stderr)[-1].endswith(
        "reached --timeout 3s and was stopped on every host (exit 124)"
    )
    assert "stopped by --timeout in" in res.stderr
    assert testhosts.pids_matching("th1", tag) == []


@pytest.mark.parametrize("as_json", [False, True])
def test_a_foreground_job_cancelled_from_elsewhere_ends_as_cancelled(as_json, tmp_path):
    """`driver cancel` from another terminal: the followed job ends with the script's code and says why."""
    tag = uuid.uuid4().hex
    proc = start_driver(
        ["train", *(["--json"] if as_json else []), str(SCRIPTS / "sleeper.py"), "--", tag], tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        records = tmp_path / "jobs"
        while not any(json.loads(p.read_text())["state"] == "running" for p in records.glob("*/job.json")):
            assert time.monotonic() < deadline and proc.poll() is None, "the job was not launched"
            time.sleep(0.2)
        job = next(p.name for p in records.iterdir())
        cancel = run_driver(["cancel", job, "--grace", "2s"], tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert f"job {job}: cancelled (driver cancel) in " in err
    if as_json:
        document = json.loads(out)
        assert (document["ended"], document["stopped"], document["exit_code"]) == (
            "cancelled",
            "cancelled",
            143,
        )
    record = json.loads((tmp_path / "jobs" / job / "job.json").read_text())
    assert (record["state"], record["stopped"], record["exit_code"]) == ("cancelled", "cancelled", 143)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_driver_stops_the_job(sig, code, testhosts, tmp_path):
    tag = uuid.uuid4().hex
    proc = start_driver(
        ["train", str(SCRIPTS / "sleeper.py"), "-i", str(testhosts.inventory_path), "--", tag], tmp_path
    )
    try:
        read_until(proc, f"sleeping {tag}")
        assert testhosts.pids_matching("th1", tag) and testhosts.pids_matching("th2", tag)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code
    for host in ("th1", "th2"):
        assert testhosts.pids_matching(host, tag) == [], host
    assert local_processes_matching(str(tmp_path)) == []


def test_two_hosts_run_in_parallel_with_prefixed_lines(testhosts, tmp_path):
    marker = f"/tmp/marker-{uuid.uuid4().hex}"
    proc = start_driver(
        ["train", str(SCRIPTS / "wait_marker.py"), "-i", str(testhosts.inventory_path), "--", marker],
        tmp_path,
    )
    try:
        seen = read_until(proc, "ready")
        seen += read_until(proc, "ready")
        # Both hosts are waiting at once: the job runs on them in parallel.
        assert sorted(seen) == ["[th1] ready", "[th2] ready"]
        for host in ("th1", "th2"):
            testhosts.ssh(host, ["touch", marker])
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert sorted(out.splitlines()) == ["[th1] got marker", "[th2] got marker"]


def test_ten_thousand_lines_arrive_complete_and_in_order(testhosts, tmp_path):
    res = run_driver(
        ["train", str(SCRIPTS / "flood.py"), "-i", str(testhosts.inventory_path), "-l", "th1", "--", "10000"],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"line {i}" for i in range(10000)]
    assert error_lines(res.stderr) == []


def test_workdir_is_staged_as_the_scripts_cwd(testhosts, tmp_path):
    work = tmp_path / "project"
    (work / "data").mkdir(parents=True)
    (work / "data" / "numbers.txt").write_text("1 2 3\n")
    (work / "train.py").write_text(
        "import os\nprint(os.path.basename(os.getcwd()), open('data/numbers.txt').read().split())\n"
    )
    res = run_driver(
        [
            "train",
            str(work / "train.py"),
            "--workdir",
            str(work),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
        ],
        tmp_path / "state",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "work ['1', '2', '3']\n"


def test_concurrent_jobs_on_one_host_have_private_directories(testhosts, tmp_path):
    script = tmp_path / "own_file.py"
    script.write_text(
        "import os, sys, time\nopen('mine.txt', 'w').write(sys.argv[1])\ntime.sleep(1)\n"
        "print(os.getcwd(), open('mine.txt').read(), oct(os.stat('..').st_mode & 0o777))\n"
    )
    procs = [
        start_driver(
            ["train", str(script), "-i", str(testhosts.inventory_path), "-l", "th1", "--", f"job{i}"],
            tmp_path,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert [o[1] for o in outs] == ["job0", "job1", "job2"]
    assert len({o[0] for o in outs}) == 3
    assert {o[2] for o in outs} == {"0o700"}


def test_each_job_has_a_local_record(testhosts, tmp_path):
    res = run_driver(
        ["train", str(SCRIPTS / "exit_with.py"), "-i", str(testhosts.inventory_path), "-l", "th1", "--", "3"],
        tmp_path,
    )
    assert res.returncode == 3
    (job,) = (tmp_path / "jobs").iterdir()
    record = json.loads((job / "job.json").read_text())
    assert record["id"] == job.name
    assert record["state"] == "ended" and record["exit_code"] == 3
    assert (job / "runner" / "artifacts" / "run" / "status").read_text() == "successful"
    assert (job / "logs" / "th1.log").read_text() == "about to end\n"
    assert testhosts.ssh("th1", f"cat ~/.remote-trainer/jobs/{job.name}/rc").stdout.strip() == "3"


def test_python_that_does_not_exist(testhosts, tmp_path):
    where = ["-i", str(testhosts.inventory_path), "-l", "th1", "--python", "/opt/no/python"]
    res = run_driver(["train", HELLO, *where], tmp_path)
    assert res.returncode == 73, res.stderr
    assert "no usable python on th1: looked for /opt/no/python" in res.stderr
    # Without the host check the script's start fails on the host, as a shell's would: 127.
    res = run_driver(["train", HELLO, *where, "--no-provision"], tmp_path)
    assert res.returncode == 127, res.stderr
    assert "cannot start /opt/no/python" in res.stdout


def test_verbose_shows_ansible_events_and_default_output_is_only_the_script(testhosts, tmp_path):
    quiet = run_driver(["train", HELLO, "-i", str(testhosts.inventory_path), "-l", "th1"], tmp_path)
    assert [line.split(":")[0] for line in quiet.stderr.splitlines()][1:] == ["  th1"]  # the summary alone
    loud = run_driver(["train", "-v", HELLO, "-i", str(testhosts.inventory_path), "-l", "th1"], tmp_path)
    assert loud.returncode == 0
    assert loud.stdout == quiet.stdout  # the script's lines, and only them, on stdout
    assert "TASK Run a plain job on a prepared host in one step" in loud.stderr
    assert "[th1] changed: Run a plain job on a prepared host in one step" in loud.stderr
    assert "[th1] job started in /home/trainer/.remote-trainer/jobs/" in loud.stderr


def test_a_plain_job_on_a_prepared_host_is_one_step_and_any_other_goes_step_by_step(testhosts, tmp_path):
    """The host's check, the launch and the relay are one task; a job that needs more (here a requirements set
    not installed yet) starts nothing in that step and takes the role's steps, its install among them."""
    inv = ["-i", str(testhosts.inventory_path), "-l", "th2"]
    plain = run_driver(["train", "-v", HELLO, *inv], tmp_path)
    assert plain.returncode == 0, plain.stderr
    tasks = [line for line in plain.stderr.splitlines() if line.startswith("TASK ")]
    ran = [line for line in plain.stderr.splitlines() if re.match(r"\[th2\] (ok|changed): ", line)]
    assert tasks[0] == "TASK Run a plain job on a prepared host in one step", tasks
    assert ran == ["[th2] changed: Run a plain job on a prepared host in one step"], plain.stderr
    assert "[th2] python /usr/bin/python3" in plain.stderr  # remote_host's report, from the one step
    assert plain.stdout.splitlines()[-1] == "done"

    wheels = str(REPO / ".state" / "wheelhouse")
    needs = ["--packages", "six==1.16.0", "--wheelhouse", wheels, "--no-index"]
    script = tmp_path / "six_version.py"
    script.write_text("import six\nprint(six.__version__)\n")
    first = run_driver(["train", "-v", str(script), *inv, *needs], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "[th2] ok: Run a plain job on a prepared host in one step" in first.stderr  # started nothing
    assert "TASK Remote host | Install requirements" in first.stderr
    assert first.stdout.strip() == "1.16.0"
    again = run_driver(["train", "-v", str(script), *inv, *needs], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "[th2] changed: Run a plain job on a prepared host in one step" in again.stderr
    assert "Install requirements" not in again.stderr and again.stdout.strip() == "1.16.0"
