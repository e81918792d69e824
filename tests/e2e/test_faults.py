"""Faults a long training run meets, each injected for real against sshd test hosts (testhosts/hosts.py):
sshd gone for a while, the network gone for longer than the driver waits (a sleeping laptop), a host that
restarts under a job, a full disk (during staging and during the run), the driver SIGKILLed while it
provisions, two jobs sharing an --output-dir, and SSH settings that change between two commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
    read_until,
    run_driver,
    start_driver,
)

COUNTER = str(SCRIPTS / "counter.py")


def record(state: Path, job_id: str) -> dict:
    return json.loads((state / "jobs" / job_id / "job.json").read_text())


def only_job(state: Path) -> str:
    (job,) = [p.name for p in (state / "jobs").iterdir() if (p / "job.json").exists()]
    return job


@pytest.fixture(scope="module")
def host(start_testhosts):
    """One host of this module's own, so that its faults touch no other test's host."""
    return start_testhosts(1)


@pytest.fixture(scope="module")
def small_disk(start_testhosts):
    """A host whose home (jobs, stage mirrors) is a 48 MiB file system of its own."""
    return start_testhosts(1, home_size="48m")


def test_sshd_gone_for_20_s_mid_job(host, tmp_path):
    """Every sshd of the host killed for 20 s: the job goes on, the driver reconnects, every line arrives once
    and in order, and the exit code is the script's."""
    proc = start_driver(
        ["train", COUNTER, "-i", str(host.inventory_path), "--no-provision", "--", "60", "0.5", "3"], tmp_path
    )
    try:
        seen = read_until(proc, "line 4")
        host.drop_ssh("th1")
        time.sleep(20)
        host.resume_ssh("th1")
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert seen + out.splitlines() == [f"line {i}" for i in range(60)] + ["end"]
    assert "the connection was lost; retrying" in err
    assert "connected again" in err


def test_network_gone_longer_than_the_driver_waits(host, tmp_path):
    """Packets to the host dropped (a sleeping laptop) for longer than --reconnect: the job goes on there;
    the driver ends with exit 91 and one line with the job id and how to reattach; `logs -f` later prints
    every line once, ends with the script's code and brings the outputs back."""
    proc = start_driver(
        [
            "train",
            COUNTER,
            "-i",
            str(host.inventory_path),
            "--no-provision",
            "--reconnect",
            "3s",
            "--",
            "40",
            "0.5",
            "0",
        ],
        tmp_path,
    )
    try:
        read_until(proc, "line 3")
        host.block_network("th1")
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            host.unblock_network("th1")
    finally:
        proc.kill()
    assert proc.returncode == 91, err
    assert "Traceback" not in err
    job = only_job(tmp_path)
    (line,) = error_lines(err)
    assert job in line and "goes on there" in line, line
    assert f"hint: `driver logs -f {job}` reattaches" in err
    mine = record(tmp_path, job)
    assert mine["state"] == "running" and not mine["outputs_synced"], mine
    # The job ran on without the driver.
    assert host.pids_matching("th1", r"counter\.py") or host.ssh(
        "th1", f"cat ~/.remote-trainer/jobs/{job}/rc"
    )
    follow = run_driver(["logs", "-f", job], tmp_path, timeout=120)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout.splitlines() == [f"line {i}" for i in range(40)] + ["end"]
    mine = record(tmp_path, job)
    assert (mine["state"], mine["exit_code"], mine["message"]) == ("ended", 0, ""), mine
    assert (Path(mine["output_dir"]) / "th1" / "done.txt").read_text() == "done\n"
    listed = json.loads(run_driver(["jobs", "--json"], tmp_path).stdout)["jobs"]
    assert [(j["id"], j["state"], j["exit_code"]) for j in listed] == [(job, "ended", 0)]


def test_a_host_restarted_under_a_job_reports_it_lost_with_the_reason(host, tmp_path):
    """The host restarts (its container stopped and started) while a detached job runs: status, jobs, wait
    and logs -f say `lost` with the reason, never `running`; the outputs it had written come back."""
    tag = uuid.uuid4().hex[:8]
    res = run_driver(
        [
            "train",
            "-d",
            str(SCRIPTS / "writes_outputs.py"),
            "-i",
            str(host.inventory_path),
            "--",
            tag,
            "sleep",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    deadline = time.monotonic() + 30
    while "wrote" not in run_driver(["logs", job], tmp_path).stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    host.restart_container("th1")
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 79, status.stderr
    assert f"job {job}: lost" in status.stdout
    (line,) = error_lines(status.stderr)
    assert "restarted" in line, line
    assert json.loads(run_driver(["jobs", "--json"], tmp_path).stdout)["jobs"][0]["state"] == "lost"
    for args in (["wait", job], ["logs", "-f", job]):
        res = run_driver(args, tmp_path)
        assert res.returncode == 79, (args, res.stderr)
        assert "restarted" in error_lines(res.stderr)[0]
    assert f"wrote {tag}" in run_driver(["logs", job], tmp_path).stdout
    outputs = Path(record(tmp_path, job)["output_dir"]) / "th1" / f"{tag}.txt"
    assert outputs.read_text() == f"{tag}\n"


def free_kib(hs) -> int:
    return int(hs.ssh("th1", "df -k --output=avail ~ | tail -1").stdout)


def test_a_full_disk_while_staging_is_one_line_before_the_script_starts(small_disk, tmp_path):
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "data.bin").write_bytes(os.urandom(60 << 20))  # more than the host's 48 MiB
    (workdir / "train.py").write_text("print('started')\n")
    before = free_kib(small_disk)
    res = run_driver(
        ["train", str(workdir / "train.py"), "--workdir", str(workdir), "-i", str(small_disk.inventory_path)],
        tmp_path / "state",
        timeout=180,
    )
    assert res.returncode == 92, res.stderr
    (line,) = error_lines(res.stderr)
    assert "th1" in line and "No space left on device" in line, line
    assert "hint: free space on th1" in res.stderr
    assert "started" not in res.stdout
    assert "Traceback" not in res.stderr
    # Nothing the failed staging sent stays behind to fill the disk for the next job.
    assert small_disk.ssh("th1", "find ~/.remote-trainer/stage -name '.~tmp~'").stdout == ""
    assert free_kib(small_disk) >= before - 1024


@pytest.mark.parametrize(("mode", "code"), [("catch", 0), ("raise", 1)])
def test_a_job_that_fills_the_disk_ends_with_its_own_code_and_its_outputs(small_disk, mode, code, tmp_path):
    """The script fills the host's disk: its own end is recorded (never `lost`), the outputs that exist come
    back, the driver says the disk is full; `driver clean` then gives the space back."""
    state = tmp_path / "state"
    res = run_driver(
        ["train", str(SCRIPTS / "fills_disk.py"), "-i", str(small_disk.inventory_path), "--", mode],
        state,
        timeout=180,
    )
    try:
        assert res.returncode == code, res.stderr
        assert "writing the model" in res.stdout
        assert "disk the job lives on is full" in res.stderr
        mine = record(state, only_job(state))
        assert (mine["state"], mine["exit_code"], mine["outputs_synced"]) == ("ended", code, True), mine
        assert (Path(mine["output_dir"]) / "th1" / "model.txt").read_text() == "model\n"
    finally:
        cleaned = run_driver(["clean", "-i", str(small_disk.inventory_path), "--older-than", "0"], state)
    assert cleaned.returncode == 0, cleaned.stderr
    assert free_kib(small_disk) > 40 << 10


def test_driver_sigkilled_while_provisioning_then_the_same_command_recovers(wheelhouse, tmp_path):
    """SIGKILL of the driver and all it started while pip installs a new set: the same command again takes
    no stale lock and no half-built venv, and succeeds."""
    from test_provision import SlowIndex, venv_of  # a slow PEP 503 index on loopback; the venv a line names

    index = SlowIndex(wheelhouse)
    # This machine is the host; a fresh set (its key includes the index's port).
    args = ["provision", "--packages", "six==1.16.0", "--index-url", index.url]
    env = driver_env(tmp_path)
    try:
        proc = subprocess.Popen(
            [DRIVER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not _local_pip_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _local_pip_running(), "pip never ran"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, ansible-playbook and what they started
        proc.wait(timeout=30)
        again = subprocess.run(
            [DRIVER, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
        )
    finally:
        index.close()
    assert again.returncode == 0, again.stderr
    venv = venv_of(again.stdout, "localhost")
    assert subprocess.run([f"{venv}/bin/python", "-c", "import six"], check=False).returncode == 0


def _local_pip_running() -> bool:
    """Whether the provisioning's pip runs on this machine now."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if b"-m\0pip\0install\0--disable-pip-version-check" in cmdline:
                return True
    return False


def test_two_jobs_with_one_output_dir_keep_their_outputs_apart(host, tmp_path):
    """Two jobs at once on one host, the same --output-dir, the same file name: each job's outputs land in
    <output-dir>/<job>/<host>/, nothing is overwritten, and the files belong to this machine's user."""
    out = tmp_path / "runs"
    procs = [
        start_driver(
            [
                "train",
                str(SCRIPTS / "writes_model.py"),
                "-i",
                str(host.inventory_path),
                "--output-dir",
                str(out),
                "--",
                tag,
                "2",
            ],
            tmp_path,
        )
        for tag in ("first", "second")
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    models = {}
    for job in (p.name for p in (tmp_path / "jobs").iterdir()):
        mine = record(tmp_path, job)
        assert mine["output_dir"] == str(out / job)
        model = out / job / "th1" / "model.txt"
        models[model.read_text().strip()] = job
        assert model.stat().st_uid == os.getuid() and model.stat().st_gid == os.getgid()
    assert sorted(models) == ["first", "second"]
    for (_, err), tag in zip(results, ("first", "second"), strict=True):
        assert f"outputs: {out / models[tag]}/<host>/" in err


def test_ssh_settings_changed_between_commands_take_effect_at_once(host, tmp_path):
    """A warm SSH connection (ControlPersist) is not reused once what it authenticated with changed: a
    known_hosts that no longer holds the host's key, or another user, fail the very next command."""
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_path.read_text())
    inventory = tmp_path / "hosts.ini"
    line = (
        f"th1 ansible_host=127.0.0.1 ansible_port={host.port('th1')} ansible_user={{user}} "
        f"ansible_ssh_private_key_file={host.key_path} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes'\n"
    )
    inventory.write_text(line.format(user="trainer"))
    hello = str(REPO / "examples" / "hello.py")
    warm = run_driver(["train", hello, "-i", str(inventory), "--no-provision"], tmp_path)
    assert warm.returncode == 0, warm.stderr
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known.write_text(
        f"[127.0.0.1]:{host.port('th1')} {other.with_suffix('.pub').read_text().split()[0]} "
        f"{other.with_suffix('.pub').read_text().split()[1]}\n"
    )
    changed = run_driver(["train", hello, "-i", str(inventory), "--no-provision"], tmp_path)
    assert changed.returncode == 72, changed.stderr
    known.write_text(host.known_hosts_path.read_text())
    assert run_driver(["train", hello, "-i", str(inventory), "--no-provision"], tmp_path).returncode == 0
    inventory.write_text(line.format(user="nobody"))
    wrong_user = run_driver(["train", hello, "-i", str(inventory), "--no-provision"], tmp_path)
    assert wrong_user.returncode == 71, wrong_user.stderr
