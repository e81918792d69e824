"""The Slurm executor against a real Slurm (testhosts/slurm.py: slurmctld, two compute nodes, two login nodes
over SSH, one shared home, no cgroups, no accounting, KillWait 30 s), driven as a user drives it: `driver
train` to a login node whose inventory says `training_job_executor=slurm`."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
from driverproc import REPO, SCRIPTS, error_lines, job_output, read_until, run_driver, start_driver

sys.path.insert(0, str(REPO / "testhosts"))

import slurm as slurm_hosts  # testhosts/slurm.py

COUNTER = str(SCRIPTS / "counter.py")
# A job that holds every compute node for 5 minutes: the next one waits (Resources).
BLOCKER = "sbatch --parsable --nodes=2 --exclusive --wrap 'sleep 300'"


@pytest.fixture(scope="module")
def cluster(testhost_images, testhost_label, tmp_path_factory):
    sc = slurm_hosts.start_cluster(tmp_path_factory.mktemp("slurm"), label=f"{testhost_label}-slurm")
    try:
        yield sc
    finally:
        sc.stop()


@pytest.fixture
def idle(cluster):
    """Each test starts and leaves with an empty queue."""
    cluster.cancel_all()
    yield cluster
    cluster.cancel_all()


def inventory(cluster, path: Path, login: str = "login1", site: str = "") -> str:
    """An inventory naming one login node `hpc` (the group says: Slurm), as a site's users write it."""
    h = cluster.hosts.hosts[login]
    hs = cluster.hosts
    ssh_args = f"-o UserKnownHostsFile={hs.known_hosts_path} -o StrictHostKeyChecking=yes"
    path.write_text(
        "[hpc]\n"
        f"hpc ansible_host=127.0.0.1 ansible_port={h.port} ansible_user=trainer"
        f" ansible_ssh_private_key_file={hs.key_path} ansible_ssh_common_args='{ssh_args}'\n"
        "[hpc:vars]\n"
        "training_job_executor=slurm\n" + site
    )
    return str(path)


def train(cluster, tmp_path: Path, *args: str, timeout: float = 180, site: str = ""):
    inv = inventory(cluster, tmp_path / "hosts.ini", site=site)
    return run_driver(["train", *args[:1], "-i", inv, *args[1:]], tmp_path / "state", timeout=timeout)


def nothing_left(cluster, pattern: str, timeout: float = 20) -> None:
    """No job in Slurm's queue and no process of the job on any compute node (within timeout)."""
    deadline = time.monotonic() + timeout
    while cluster.active() or cluster.processes(pattern):
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: queue {cluster.active()}, processes {cluster.processes(pattern)}")
        time.sleep(0.25)


def test_exit_codes_outputs_and_summary(idle, tmp_path):
    """Exit 0 and exit 3 are the driver's codes; the outputs come back after both; the summary names the
    Slurm job, its state and its node."""
    ok = train(idle, tmp_path, COUNTER, "--output-dir", str(tmp_path / "out"), "--", "3", "0.1", "0")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["line 0", "line 1", "line 2", "end"]
    assert "Slurm job" in ok.stderr and "COMPLETED on n" in ok.stderr, ok.stderr
    assert (job_output(tmp_path / "out", "hpc") / "done.txt").read_text() == "done\n"

    failed = train(idle, tmp_path, COUNTER, "--output-dir", str(tmp_path / "out"), "--", "2", "0.1", "3")
    assert failed.returncode == 3, failed.stderr
    assert "FAILED on n" in failed.stderr
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_args_and_env_with_spaces_quotes_and_substitutions(idle, tmp_path):
    tricky = ["a b", "it's", '"q"', "$(touch /tmp/pwned)", "`id`", "; exit 7"]
    res = train(
        idle,
        tmp_path,
        str(SCRIPTS / "echo_args.py"),
        "-e",
        "ECHO_ENV_NAMES=V1,V2",
        "-e",
        "V1=$(id) 'x' \"y\"",
        "-e",
        "V2=a;b|c",
        "--",
        *tricky,
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got == {"args": tricky, "env": {"V1": "$(id) 'x' \"y\"", "V2": "a;b|c"}}
    for node in idle.computes:
        assert idle.exec(node, ["test", "-e", "/tmp/pwned"], check=False).returncode == 1


def test_queue_lines_while_waiting_then_live_output(idle, tmp_path):
    """Behind a job that holds every node: one line when queued with Slurm's reason; once it runs, a line
    with its node and the output live (the first line before the script ends)."""
    blocker = idle.hosts.ssh("login2", BLOCKER).stdout.strip()
    inv = inventory(idle, tmp_path / "hosts.ini")
    proc = start_driver(["train", COUNTER, "-i", inv, "--", "20", "0.5", "0"], tmp_path / "state")
    try:
        waited = read_until(proc, "is queued", stream="stderr", timeout=120)
        assert any("(Resources)" in line or "(Priority)" in line for line in waited[-1:]), waited
        assert proc.poll() is None
        idle.hosts.ssh("login2", f"scancel {blocker}")
        running = read_until(proc, "is running on n", stream="stderr", timeout=60)
        assert running
        first = read_until(proc, "line 0", timeout=60)
        assert first == ["line 0"] and proc.poll() is None  # live: the script still runs
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"line {i}" for i in range(1, 20)] + ["end"]


def test_a_flood_of_100000_lines_whole_and_in_order(idle, tmp_path):
    res = train(idle, tmp_path, str(SCRIPTS / "flood.py"), "--", "100000", timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"line {i}" for i in range(100000)]


def test_timeout_gives_124_and_leaves_nothing(idle, tmp_path):
    res = train(
        idle, tmp_path, str(SCRIPTS / "sleeper.py"), "--timeout", "8s", "--grace", "2s", "--", "slurm-to"
    )
    assert res.returncode == 124, res.stderr
    assert "sleeping slurm-to" in res.stdout
    nothing_left(idle, "slurm-to")


@pytest.mark.parametrize("pending", [False, True], ids=["running", "pending"])
def test_ctrl_c_cancels_running_and_pending_jobs(idle, tmp_path, pending):
    """Ctrl+C: a running job is stopped on its node, a pending one leaves the queue; exit 130 either way."""
    blocker = None
    if pending:
        blocker = idle.hosts.ssh("login2", BLOCKER).stdout
    inv = inventory(idle, tmp_path / "hosts.ini")
    proc = start_driver(
        ["train", str(SCRIPTS / "sleeper.py"), "-i", inv, "--", "slurm-cc"], tmp_path / "state"
    )
    try:
        if pending:
            read_until(proc, "is queued", stream="stderr", timeout=120)
        else:
            read_until(proc, "sleeping slurm-cc", timeout=120)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    if blocker:
        idle.hosts.ssh("login2", f"scancel {blocker.strip()}")
    nothing_left(idle, "slurm-cc")


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace(idle, tmp_path):
    """--grace 2s, whatever Slurm's KillWait (30 s here): SIGKILL comes from the job's own launcher."""
    inv = inventory(idle, tmp_path / "hosts.ini")
    proc = start_driver(
        ["train", str(SCRIPTS / "ignores_sigterm.py"), "-i", inv, "--grace", "2s", "--", "slurm-ign"],
        tmp_path / "state",
    )
    try:
        read_until(proc, "ignoring slurm-ign", timeout=120)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    nothing_left(idle, "slurm-ign")
    assert time.monotonic() - stopped_at < 15  # the grace, not KillWait


def test_detach_then_status_logs_and_cancel_through_the_other_login_node(idle, tmp_path):
    """The name `hpc` pointed at login1 for the start and at login2 afterwards (a site's login nodes behind
    one name): status, logs and cancel work from the other login node, and the outputs come back after the
    cancel."""
    state = tmp_path / "state"
    inv = inventory(idle, tmp_path / "hosts.ini", login="login1")
    script = str(SCRIPTS / "writes_outputs.py")
    started = run_driver(
        ["train", script, "-i", inv, "-d", "--output-dir", str(tmp_path / "out"), "--", "slurm-d", "sleep"],
        state,
    )
    assert started.returncode == 0, started.stderr
    job = started.stdout.strip().splitlines()[-1]
    inventory(idle, tmp_path / "hosts.ini", login="login2")  # the same name now reaches the other node
    deadline = time.monotonic() + 60
    while True:
        status = run_driver(["status", job], state)
        if "running" in status.stdout or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
    logs = run_driver(["logs", job], state)
    assert logs.returncode == 0 and logs.stdout == "wrote slurm-d\n", logs.stderr
    cancelled = run_driver(["cancel", job], state)
    assert cancelled.returncode == 0, cancelled.stderr
    assert run_driver(["wait", job], state).returncode != 0
    nothing_left(idle, "slurm-d")
    assert (tmp_path / "out" / job / "hpc" / "slurm-d.txt").read_text() == "slurm-d\n"


def test_bad_partition_is_one_line_with_sbatchs_reason(idle, tmp_path):
    res = train(idle, tmp_path, COUNTER, "--partition", "nope", "--", "1", "0", "0")
    assert res.returncode == 93, res.stderr
    (line,) = error_lines(res.stderr)
    assert "Slurm refused the job on hpc" in line and "nope" in line and "Invalid partition" in line
    assert "Traceback" not in res.stderr
    assert not idle.queue() or all("PENDING" not in q for q in idle.active())


def test_site_defaults_come_from_the_inventory_and_the_job_wins(idle, tmp_path):
    """training_job_slurm on the group: a bad partition there is refused; --partition on the command line
    wins."""
    site = 'training_job_slurm={"partition": "nope", "options": ["--comment=site"]}\n'
    refused = train(idle, tmp_path, COUNTER, "--", "1", "0", "0", site=site)
    assert refused.returncode == 93 and "nope" in refused.stderr, refused.stderr
    ok = train(idle, tmp_path, COUNTER, "--partition", slurm_hosts.PARTITION, "--", "1", "0", "0", site=site)
    assert ok.returncode == 0, ok.stderr


def test_cancelled_while_pending_never_started(idle, tmp_path):
    """A detached job cancelled while it waits leaves the queue; its end says it never started (exit 97)."""
    state = tmp_path / "state"
    blocker = idle.hosts.ssh("login2", BLOCKER).stdout
    inv = inventory(idle, tmp_path / "hosts.ini")
    started = run_driver(["train", COUNTER, "-i", inv, "-d", "--", "5", "0.1", "0"], state)
    assert started.returncode == 0, started.stderr
    job = started.stdout.strip().splitlines()[-1]
    assert run_driver(["cancel", job], state).returncode == 0
    idle.hosts.ssh("login2", f"scancel {blocker.strip()}")
    ended = run_driver(["status", job], state)
    assert ended.returncode == 97, ended.stdout + ended.stderr
    assert "never started" in ended.stderr
    assert not idle.active()


def test_two_nodes_one_allocation_every_rank_its_environment(idle, tmp_path):
    """--nodes 2: one allocation of two nodes, one task each; NODE_RANK, MASTER_ADDR (the allocation's first
    node) and the rest as today's --nodes gives them; each line labelled with its task."""
    res = train(
        idle,
        tmp_path,
        str(SCRIPTS / "rank_env.py"),
        "--nodes",
        "2",
        "-e",
        "FOO=a b",
        "--master-port",
        "29633",
    )
    assert res.returncode == 0, res.stderr
    lines = sorted(line for line in res.stdout.splitlines() if "NODE_RANK" in line)
    assert lines == [
        f"{r}: n{r + 1} NODE_RANK={r} NNODES=2 MASTER_ADDR=n1 MASTER_PORT=29633 WORLD_SIZE=2 RANK={r} "
        "LOCAL_RANK=0 FOO=a b"
        for r in (0, 1)
    ]
    assert "COMPLETED on n[1-2]" in res.stderr


def test_torchrun_across_the_allocation(idle, torch_wheelhouse, tmp_path):
    """torchrun on each node of a two-node allocation: gloo's all-reduce over both, after the preflight."""
    res = train(
        idle,
        tmp_path,
        str(SCRIPTS / "all_reduce.py"),
        "--nodes",
        "2",
        "--launcher",
        "torchrun",
        "--master-port",
        "29634",
        "--packages",
        "torch==2.13.0",
        "--wheelhouse",
        str(torch_wheelhouse),
        "--no-index",
        timeout=900,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(line for line in res.stdout.splitlines() if "sum" in line) == [
        "0: rank 0 of 2 on node 0: sum 3",
        "1: rank 1 of 2 on node 1: sum 3",
    ]


def test_the_preflight_runs_inside_the_allocation(idle, tmp_path):
    """The master's rendezvous port taken on the first node: the preflight (inside the allocation) says so,
    no rank starts the script, exit 81."""
    port = "29635"
    holder = (
        f"import socket,time; s=socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); time.sleep(120)"
    )
    for node in idle.computes:  # whichever node comes first in the allocation
        idle.exec(node, ["sh", "-c", f'nohup python3 -c "{holder}" >/dev/null 2>&1 &'])
    try:
        res = train(idle, tmp_path, str(SCRIPTS / "rank_env.py"), "--nodes", "2", "--master-port", port)
    finally:
        for node in idle.computes:
            idle.exec(node, ["pkill", "-f", f"bind\\(\\('0.0.0.0', {port}"], check=False)
    assert res.returncode == 81, res.stderr
    assert f"port {port} is not free on the master" in res.stdout + res.stderr
    assert "NODE_RANK" not in res.stdout


def test_slurms_own_time_limit_stops_the_script_as_timeout_does(idle, tmp_path):
    """A time limit that comes from Slurm (the site's, or --sbatch=--time): Slurm's signal --grace before it
    reaches the launcher, which stops the script (SIGTERM, then SIGKILL) and records its end: exit 124."""
    started = time.monotonic()
    res = train(
        idle, tmp_path, str(SCRIPTS / "sleeper.py"), "--sbatch=--time=1", "--grace", "2s", "--", "slurm-lim"
    )
    assert res.returncode == 124, res.stderr
    assert time.monotonic() - started < 100
    nothing_left(idle, "slurm-lim")


def count_to(n, tag):
    import os
    import time

    for i in range(n):
        print(f"{tag} step {i} in slurm job {os.environ.get('SLURM_JOB_ID')}", flush=True)
        time.sleep(0.2)


def test_a_kubeflow_sdk_custom_trainer_runs_through_slurm(idle, tmp_path, monkeypatch):
    """The SDK's CustomTrainer with the driver's backend and an inventory that names a Slurm login node: the
    function runs in an allocation, its logs follow live, its status completes; delete_job cancels."""
    from kubeflow.trainer import CustomTrainer

    from driver.sdk import RemoteBackendConfig, RemoteTrainerClient

    monkeypatch.setenv("REMOTE_TRAINER_STATE_DIR", str(tmp_path / "state"))
    client = RemoteTrainerClient(RemoteBackendConfig(inventory=inventory(idle, tmp_path / "hosts.ini")))
    name = client.train(trainer=CustomTrainer(func=count_to, func_args={"n": 5, "tag": "sdk"}))
    lines = list(client.get_job_logs(name, follow=True))
    assert [line.split(" in slurm job ")[0] for line in lines] == [f"sdk step {i}" for i in range(5)]
    assert all(line.split(" in slurm job ")[1].isdigit() for line in lines), lines
    assert client.wait_for_job_status(name, timeout=120, polling_interval=1).status == "Complete"

    long = client.train(trainer=CustomTrainer(func=count_to, func_args={"n": 3000, "tag": "sdk-del"}))
    deadline = time.monotonic() + 120
    while not idle.processes("jobctl.py run") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert idle.active(), "the long job never ran"
    client.delete_job(long)
    nothing_left(idle, "jobctl.py run")


def test_the_job_root_can_be_the_sites_scratch(idle, tmp_path):
    """training_job_root=$HOME/scratch/jobs in the inventory (as $SCRATCH/jobs at a site): the job directory
    is there (the variable expanded on the login node), and a later `logs` finds it."""
    state = tmp_path / "state"
    inv = inventory(idle, tmp_path / "hosts.ini", site="training_job_root=$HOME/scratch/jobs\n")
    res = run_driver(["train", COUNTER, "-i", inv, "--", "2", "0.1", "0"], state)
    assert res.returncode == 0, res.stderr
    (job,) = [p.name for p in (state / "jobs").iterdir()]
    assert job in idle.hosts.ssh("login1", "ls scratch/jobs").stdout.split()
    logs = run_driver(["logs", job], state)
    assert logs.returncode == 0 and logs.stdout == "line 0\nline 1\nend\n", logs.stderr


def test_preemption_lets_the_script_checkpoint_and_exits_96(idle, tmp_path):
    """A job of the higher partition takes the nodes: Slurm's SIGTERM reaches the script (which saves a
    checkpoint in its GraceTime), and the driver's code says preempted (96), not the script's 143."""
    inv = inventory(idle, tmp_path / "hosts.ini")
    script = str(SCRIPTS / "checkpoints.py")
    proc = start_driver(
        ["train", script, "-i", inv, "--sbatch=--nodes=2", "--sbatch=--exclusive"], tmp_path / "state"
    )
    try:
        read_until(proc, "up", timeout=120)
        idle.hosts.ssh("login2", f"sbatch -p {slurm_hosts.URGENT} --nodes=2 --exclusive --wrap 'sleep 1'")
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 96, err
    assert "checkpoint saved" in out
    assert "preempted by Slurm" in err and "PREEMPTED" in err


def test_a_node_that_dies_ends_the_job_with_95(idle, tmp_path):
    """The job's node goes down under it: Slurm ends the job as NODE_FAIL and the driver says so (95)."""
    inv = inventory(idle, tmp_path / "hosts.ini")
    proc = start_driver(
        ["train", COUNTER, "-i", inv, "--sbatch=--nodelist=n2", "--", "600", "0.5", "0"], tmp_path / "state"
    )
    try:
        read_until(proc, "line 2", timeout=120)
        idle.stop_node("n2")
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
        idle.start_node("n2")
    assert proc.returncode == 95, err
    (line,) = error_lines(err)
    assert "a node of its Slurm allocation failed (NODE_FAIL)" in line


SQUEUE_COUNTER = """#!/bin/sh
# Counts the calls of squeue (the test's), then runs the real one.
echo "$*" >> /tmp/squeue-calls
exec /usr/bin/squeue "$@"
"""


def test_slurm_is_polled_gently_whatever_the_number_of_jobs(idle, tmp_path):
    """Four detached jobs wait behind a job that holds every node while four `driver logs -f` follow them for
    12 s: the login node asks squeue about once every 2 s for all of them, not once per job and poll."""
    state = tmp_path / "state"
    idle.exec("login1", ["sh", "-c", f"cat > /usr/local/bin/squeue <<'EOF'\n{SQUEUE_COUNTER}EOF\n"
                         "chmod 755 /usr/local/bin/squeue; rm -f /tmp/squeue-calls"])  # fmt: skip
    try:
        blocker = idle.hosts.ssh("login2", BLOCKER).stdout.strip()
        inv = inventory(idle, tmp_path / "hosts.ini")
        jobs = []
        for _ in range(4):
            started = run_driver(["train", COUNTER, "-i", inv, "-d", "--", "1", "0", "0"], state)
            assert started.returncode == 0, started.stderr
            jobs.append(started.stdout.strip().splitlines()[-1])
        idle.exec("login1", ["rm", "-f", "/tmp/squeue-calls"])
        followers = [start_driver(["logs", "-f", job], state) for job in jobs]
        time.sleep(12)
        calls = idle.exec(
            "login1", ["sh", "-c", "cat /tmp/squeue-calls 2>/dev/null || true"]
        ).stdout.splitlines()
        idle.hosts.ssh("login2", f"scancel {blocker}")
        for proc in followers:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        idle.exec("login1", ["rm", "-f", "/usr/local/bin/squeue"])
    assert 3 <= len(calls) <= 10, calls  # 12 s / 2 s, and a few for the followers' starts


def test_a_job_that_never_started_leaves_no_secret_behind(idle, tmp_path):
    """The spec (env values, arguments) of a job that never started leaves the shared file system: one
    cancelled while queued (`driver cancel`), one that Slurm dropped from the queue (a scancel outside the
    driver), seen by `driver status`. `clean` then counts their age from the launch (they have no start)."""
    state = tmp_path / "state"
    blocker = idle.hosts.ssh("login2", BLOCKER).stdout.strip()
    inv = inventory(idle, tmp_path / "hosts.ini")
    jobs = []
    for _ in range(2):
        started = run_driver(
            ["train", COUNTER, "-i", inv, "-d", "-e", "SECRET_VALUE", "--", "5", "0.1", "0"],
            state,
            extra_env={"SECRET_VALUE": "queued-secret-9d1f"},
        )
        assert started.returncode == 0, started.stderr
        jobs.append(started.stdout.strip().splitlines()[-1])
    rt = [f"~/.remote-trainer/jobs/{job}/.rt" for job in jobs]
    assert "queued-secret-9d1f" in idle.hosts.ssh("login1", f"cat {rt[0]}/spec.json {rt[1]}/spec.json").stdout
    assert run_driver(["cancel", jobs[0]], state).returncode == 0
    slurm_id = json.loads(idle.hosts.ssh("login1", f"cat {rt[1]}/slurm.json").stdout)["id"]
    idle.hosts.ssh("login2", f"scancel {slurm_id}")
    time.sleep(2.5)  # Slurm's answers about a queued job are reused for 2 s
    ended = run_driver(["status", jobs[1]], state)
    assert ended.returncode == 97, ended.stdout + ended.stderr
    idle.hosts.ssh("login2", f"scancel {blocker}")
    left = idle.hosts.ssh("login1", f"ls {rt[0]}/spec.json {rt[1]}/spec.json", check=False)
    assert left.stdout == "", "a spec stayed on the shared file system"
    time.sleep(2)
    cleaned = run_driver(["clean", "-i", inv, "--older-than", "1s"], state)
    assert cleaned.returncode == 0, cleaned.stderr
    listed = idle.hosts.ssh("login1", "ls ~/.remote-trainer/jobs").stdout.split()
    assert not set(jobs) & set(listed), listed


def test_a_shared_jobs_root_takes_no_planted_queue_answer(idle, tmp_path):
    """A jobs root that another user can write to (a group's project directory): mallory plants the shared
    queue answer (saying no job exists) and a symlink for its lock into the user's home. The job still runs as
    Slurm says, and nothing of the user's is written through the symlink."""
    root = "/home/trainer/shared-jobs"
    home_mode = idle.exec("login1", ["stat", "-c", "%a", "/home/trainer"]).stdout.strip()
    idle.exec("login1", ["sh", "-c", "id mallory >/dev/null 2>&1 || useradd -m mallory"])
    idle.exec("login1", ["sh", "-c", f"chmod 0711 /home/trainer && install -d -o trainer -m 0777 {root}"])
    try:
        planted = (
            '{"t": 4102444800, "jobs": {}}'  # asked in 2100: fresh for ever, and no job of the user in it
        )
        for name in (".slurm-queue.json", ".slurm-queue/queue.json"):
            idle.exec(
                "login1",
                ["sh", "-c", f"mkdir -p {root}/.slurm-queue; printf '%s' '{planted}' > {root}/{name}"],
                user="mallory",
            )
            idle.exec(
                "login1",
                ["ln", "-s", "/home/trainer/written-for-mallory", f"{root}/{name}.lock"],
                user="mallory",
            )
        res = train(idle, tmp_path, COUNTER, "--", "2", "0.1", "0", site=f"training_job_root={root}\n")
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == ["line 0", "line 1", "end"]
        written = idle.exec("login1", ["test", "-e", "/home/trainer/written-for-mallory"], check=False)
        assert written.returncode != 0, "the user wrote through mallory's symlink"
    finally:
        idle.exec(
            "login1",
            ["sh", "-c", f"rm -rf {root} /home/trainer/written-for-mallory; chmod {home_mode} /home/trainer"],
        )
