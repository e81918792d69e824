"""Container jobs (issue 14): `driver train --image` on hosts that run rootless podman, and on this machine.

The hosts are test hosts with their own podman (testhosts/image, target testhost-podman, run --privileged);
no registry exists here, so the job image reaches them with --image-from-local (or is built there with
--build), and pulling is covered by the clear error for an image that is nowhere.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import hosts as th
import pytest
from driverproc import SCRIPTS, read_until, run_driver, start_driver

IMAGE = th.IMAGE_JOB
INSIDE = """\
import json, os, sys
os.makedirs("outputs", exist_ok=True)
with open("outputs/inside.txt", "w") as f:
    f.write("written in a container\\n")
print(json.dumps({"container": os.path.exists("/run/.containerenv") or os.path.exists("/.dockerenv"),
                  "args": sys.argv[1:], "secret": os.environ.get("SECRET"), "cwd": os.getcwd(),
                  "built": open("/built.txt").read().strip() if os.path.exists("/built.txt") else None}))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


@pytest.fixture(scope="module")
def podman_hosts(start_testhosts):
    return start_testhosts(2, image=th.IMAGE_PODMAN, extra_run_args=th.PODMAN_RUN_ARGS)


@pytest.fixture(scope="module")
def sent(podman_hosts, tmp_path_factory):
    """The job image, sent to both hosts by a first --image-from-local job (what later tests run in)."""
    state = tmp_path_factory.mktemp("sent")
    script = state / "inside.py"
    script.write_text(INSIDE)
    res = run_driver(
        [
            "train",
            str(script),
            "-i",
            str(podman_hosts.inventory_path),
            "--image",
            IMAGE,
            "--image-from-local",
        ],
        state,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return podman_hosts


def inside(tmp_path: Path) -> Path:
    script = tmp_path / "inside.py"
    script.write_text(INSIDE)
    return script


def containers(hs: th.HostSet, host: str, job: str = "") -> list[str]:
    """Names of the job's containers on the host, running or stopped."""
    out = hs.ssh(host, "podman ps -a --format '{{.Names}}'").stdout.split()
    return [name for name in out if name.startswith("remote-trainer-" + job)]


def train_inside(hs: th.HostSet, host: str, tmp_path: Path, *options: str, image: str = IMAGE):
    """`driver train inside.py -i HOSTS -l HOST --image IMAGE OPTIONS...` (script arguments after `--`)."""
    argv = [
        "train",
        str(inside(tmp_path)),
        "-i",
        str(hs.inventory_path),
        "-l",
        host,
        "--image",
        image,
        *options,
    ]
    return run_driver(argv, tmp_path, timeout=300)


def test_a_container_job_gets_args_env_and_outputs_owned_by_the_user(sent, tmp_path):
    args = ["a b", "it's", '"q"', "$(touch /tmp/pwned)", "*"]
    res = train_inside(
        sent, "th1", tmp_path, "-e", "SECRET=s3cr3t value $HOME", "-e", "EXIT_WITH=3", "--", *args
    )
    assert res.returncode == 3, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["container"] is True
    assert seen["args"] == args
    assert seen["secret"] == "s3cr3t value $HOME"
    job = seen["cwd"].split("/")[-2]
    assert seen["cwd"] == f"/home/trainer/.remote-trainer/jobs/{job}/work"
    # Outputs came back, and on the host they belong to the SSH user (rootless podman: the container's root).
    assert (
        tmp_path / "jobs" / job / "outputs" / "th1" / "inside.txt"
    ).read_text() == "written in a container\n"
    owner = sent.ssh("th1", f"stat -c %U ~/.remote-trainer/jobs/{job}/work/outputs/inside.txt").stdout.strip()
    assert owner == "trainer"
    assert sent.ssh("th1", "ls /tmp/pwned 2>/dev/null; true").stdout.strip() == ""
    # The container went with the job (and the secret's value, which its command line never held, with it).
    assert containers(sent, "th1", job) == []


def test_a_second_image_from_local_sends_nothing(sent, tmp_path):
    archive = "~/.cache/remote-trainer/images/*.tar"
    before = sent.ssh("th2", f"stat -c %Y {archive}").stdout.strip()
    res = train_inside(sent, "th2", tmp_path, "--image-from-local", "-v")
    assert res.returncode == 0, res.stderr
    assert sent.ssh("th2", f"stat -c %Y {archive}").stdout.strip() == before
    ran = re.findall(r"\] (?:ok|changed): Training job \| (Send the archive|Load the image)", res.stderr)
    assert ran == [], res.stderr


def test_the_inventory_names_a_hosts_image(sent, tmp_path):
    inventory = tmp_path / "hosts.ini"
    lines = sent.inventory_path.read_text().splitlines()
    inventory.write_text(
        "\n".join(f"{line} training_job_image={IMAGE}" if line.startswith("th1 ") else line for line in lines)
        + "\n"
    )
    res = run_driver(
        ["train", str(inside(tmp_path)), "-i", str(inventory), "-l", "th1"], tmp_path, timeout=180
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["container"] is True


def test_timeout_and_ctrl_c_leave_no_container_and_no_process(sent, tmp_path):
    inv = ["-i", str(sent.inventory_path), "-l", "th1", "--image", IMAGE]
    tag = uuid.uuid4().hex[:10]
    res = run_driver(
        ["train", str(SCRIPTS / "ignores_sigterm.py"), *inv, "--timeout", "25", "--grace", "1", "--", tag],
        tmp_path,
        timeout=180,
    )
    assert res.returncode == 124, res.stderr
    assert f"ignoring {tag}" in res.stdout
    assert sent.pids_matching("th1", tag) == []
    assert containers(sent, "th1") == []

    tag = uuid.uuid4().hex[:10]
    proc = start_driver(["train", str(SCRIPTS / "sleeper.py"), *inv, "--", tag], tmp_path)
    try:
        read_until(proc, f"sleeping {tag}", timeout=120)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert sent.pids_matching("th1", tag) == []
    assert containers(sent, "th1") == []


def test_a_detached_container_job_survives_its_driver_and_is_found_again(sent, tmp_path):
    tag = uuid.uuid4().hex[:10]
    proc = start_driver(
        ["train", str(SCRIPTS / "sleeper.py"), "-i", str(sent.inventory_path), "-l", "th2", "--image", IMAGE,
         "--", tag],
        tmp_path,
    )  # fmt: skip
    try:
        read_until(proc, f"sleeping {tag}", timeout=120)
        proc.kill()  # the driver dies without a word; the job goes on on the host
        proc.wait(timeout=10)
    finally:
        proc.kill()
    jobs = json.loads(run_driver(["jobs", "--json"], tmp_path).stdout)
    job = jobs["jobs"][0]["id"]
    assert containers(sent, "th2", job) == [f"remote-trainer-{job}"]
    status = run_driver(["status", job], tmp_path)
    assert "th2: running" in status.stdout, status.stdout + status.stderr
    logs = run_driver(["logs", job], tmp_path)
    assert f"sleeping {tag}" in logs.stdout
    cancelled = run_driver(["cancel", job], tmp_path, timeout=120)
    assert cancelled.returncode == 0, cancelled.stderr
    assert containers(sent, "th2", job) == []
    assert sent.pids_matching("th2", tag) == []


def test_keep_container_keeps_the_stopped_container(sent, tmp_path):
    res = train_inside(sent, "th1", tmp_path, "--keep-container")
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout.strip().splitlines()[-1])["cwd"].split("/")[-2]
    try:
        assert containers(sent, "th1", job) == [f"remote-trainer-{job}"]
        state = sent.ssh(
            "th1", f"podman inspect --format '{{{{.State.Status}}}}' remote-trainer-{job}"
        ).stdout
        assert state.strip() == "exited"
    finally:
        sent.ssh("th1", f"podman rm -f remote-trainer-{job}", check=False)


def test_build_from_the_workdir_runs_in_the_built_image_and_is_cached(sent, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    tag = uuid.uuid4().hex[:10]
    (work / "Containerfile").write_text(f"FROM {IMAGE}\nRUN echo built-{tag} > /built.txt\n")
    script = work / "inside.py"
    script.write_text(INSIDE)
    cmd = [
        "train",
        str(script),
        "-i",
        str(sent.inventory_path),
        "-l",
        "th2",
        "--workdir",
        str(work),
        "--build",
    ]
    first = run_driver(cmd, tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1])["built"] == f"built-{tag}"
    images = "podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep remote-trainer-build"
    built = sent.ssh("th2", images).stdout.strip()
    second = run_driver([*cmd, "-v"], tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.strip().splitlines()[-1])["built"] == f"built-{tag}"
    # The engine's layer cache: the same image, not a new build of it.
    assert sent.ssh("th2", images).stdout.strip() == built


def test_an_image_that_is_nowhere_fails_with_one_clear_line(sent, tmp_path):
    res = train_inside(sent, "th1", tmp_path, image="localhost/remote-trainer-no-such-image:1")
    assert res.returncode == 89, res.stderr
    assert (
        "error: image localhost/remote-trainer-no-such-image:1 is not on th1 and could not be pulled"
        in res.stderr
    )
    assert "Traceback" not in res.stderr


def test_gpus_without_the_nvidia_toolkit_fail_clearly(sent, tmp_path):
    res = train_inside(sent, "th1", tmp_path, "--gpus", "all")
    assert res.returncode == 88, res.stderr
    assert "--gpus on th1: podman has no NVIDIA GPUs to pass in" in res.stderr


def test_a_host_without_an_engine_fails_clearly(testhosts, tmp_path):
    res = train_inside(testhosts, "th1", tmp_path)
    assert res.returncode == 88, res.stderr
    assert "error: no container engine on th1: looked for podman, docker on the PATH" in res.stderr


RENDEZVOUS = """\
import os, socket, time
rank, addr, port = int(os.environ["NODE_RANK"]), os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
if rank == 0:
    server = socket.create_server(("0.0.0.0", port))
    conn, _ = server.accept()
    print("master got", conn.recv(64).decode(), flush=True)
else:
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection((addr, port), timeout=2).sendall(b"hello from rank 1")
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    print("rank 1 sent", flush=True)
"""


def test_a_multi_node_container_job_reaches_its_master_over_the_host_network(sent, tmp_path):
    script = tmp_path / "rendezvous.py"
    script.write_text(RENDEZVOUS)
    inventory = tmp_path / "hosts.ini"
    # Each host reaches the other by its container address (the master's published port is for this machine).
    lines = []
    for line in sent.inventory_path.read_text().splitlines():
        name = line.split(" ", 1)[0]
        lines.append(
            f"{line} train_master_addr={sent.container_ip('th1')}" if name in ("th1", "th2") else line
        )
    inventory.write_text("\n".join(lines) + "\n")
    port = str(29500 + int(uuid.uuid4().int % 1000))
    res = run_driver(
        ["train", str(script), "-i", str(inventory), "--nodes", "2", "--master-port", port, "--image", IMAGE],
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "master got hello from rank 1" in res.stdout
    assert "rank 1 sent" in res.stdout


def test_a_container_job_on_this_machine(testhost_images, tmp_path):
    """No inventory: this machine is the host, with its own (rootful) podman."""
    res = run_driver(["train", str(inside(tmp_path)), "--image", IMAGE, "--", "here"], tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["container"] is True and seen["args"] == ["here"]
    job = seen["cwd"].split("/")[-2]
    assert (tmp_path / "jobs" / job / "outputs" / "localhost" / "inside.txt").exists()
    left = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True)
    assert f"remote-trainer-{job}" not in left.stdout.split()


def where_am_i(tag):
    import os

    print("in a container:", os.path.exists("/run/.containerenv"), tag)


def test_the_sdk_backend_runs_a_function_in_the_image(sent, tmp_path, monkeypatch):
    from kubeflow.trainer import CustomTrainer

    from driver.sdk import RemoteBackendConfig, RemoteTrainerClient

    monkeypatch.setenv("REMOTE_TRAINER_STATE_DIR", str(tmp_path))
    config = RemoteBackendConfig(inventory=str(sent.inventory_path), limit="th2", image=IMAGE)
    client = RemoteTrainerClient(config)
    tag = uuid.uuid4().hex[:6]
    name = client.train(trainer=CustomTrainer(func=where_am_i, func_args={"tag": tag}))
    assert list(client.get_job_logs(name, follow=True)) == [f"in a container: True {tag}"]
    assert client.wait_for_job_status(name, timeout=120, polling_interval=1).status == "Complete"


USES_SIX = """\
import six
print("six", six.__version__, "from", six.__file__)
"""


def test_the_sent_image_archive_is_the_users_alone(sent):
    """--image-from-local's archive on the host (an image may hold anything): another user of the host can
    neither list its directory nor read it, whatever the local file's mode and the login's umask."""
    for host in ("th1", "th2"):
        found = sent.ssh(host, "find ~/.cache/remote-trainer/images -printf '%m %p\\n'").stdout.splitlines()
        assert any(line.endswith(".tar") for line in found), found
        assert all(line.split()[0] in ("700", "600") for line in found), found


def test_requirements_go_into_the_images_python_never_into_the_host(sent, wheelhouse, tmp_path):
    script = tmp_path / "uses_six.py"
    script.write_text(USES_SIX)
    cmd = ["train", str(script), "-i", str(sent.inventory_path), "-l", "th1", "--image", IMAGE,
           "--packages", "six==1.16.0", "--wheelhouse", str(wheelhouse), "--no-index"]  # fmt: skip
    first = run_driver(cmd, tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "[th1] installing 1 requirements (six==1.16.0) into a package directory for the job's image" in (
        first.stderr
    )
    line = first.stdout.strip().splitlines()[-1]
    assert line.startswith("six 1.16.0 from /home/trainer/.cache/remote-trainer/venvs/"), line
    # The host's own python has no six: nothing was installed there.
    assert sent.ssh("th1", "python3 -c 'import six'", check=False).returncode != 0
    # A second job finds the set ready: no new install, the same directory.
    second = run_driver(cmd, tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "installing" not in second.stderr
    assert second.stdout.strip().splitlines()[-1] == line


# -- docker -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker_host(start_testhosts):
    """A host whose engine is docker (rootful dockerd inside the test host; trainer in the docker group)."""
    hs = start_testhosts(1, image=th.IMAGE_DOCKER, extra_run_args=th.PODMAN_RUN_ARGS)
    deadline = time.monotonic() + 60
    while hs.ssh("th1", "docker info --format '{{.ServerVersion}}'", check=False).returncode != 0:
        assert time.monotonic() < deadline, hs.ssh("th1", "sudo cat /var/log/dockerd.log", check=False).stdout
        time.sleep(0.5)
    return hs


def docker_containers(hs: th.HostSet, job: str = "") -> list[str]:
    out = hs.ssh("th1", "docker ps -a --format '{{.Names}}'").stdout.split()
    return [name for name in out if name.startswith("remote-trainer-" + job)]


def test_a_docker_host_runs_the_job_as_the_ssh_user(docker_host, tmp_path):
    args = ["a b", "$(touch /tmp/pwned)"]
    res = run_driver(
        ["train", str(inside(tmp_path)), "-i", str(docker_host.inventory_path), "--image", IMAGE,
         "--image-from-local", "-e", "SECRET=x y", "-e", "EXIT_WITH=4", "--", *args],
        tmp_path,
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 4, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["container"] is True and seen["args"] == args and seen["secret"] == "x y"
    job = seen["cwd"].split("/")[-2]
    # A rootful engine: the script ran with --user, so its files belong to trainer, not root.
    owner = docker_host.ssh("th1", f"stat -c %U ~/.remote-trainer/jobs/{job}/work/outputs/inside.txt").stdout
    assert owner.strip() == "trainer"
    assert (tmp_path / "jobs" / job / "outputs" / "th1" / "inside.txt").exists()
    assert docker_containers(docker_host, job) == []


def test_a_timeout_on_docker_leaves_no_container_and_no_process(docker_host, tmp_path):
    tag = uuid.uuid4().hex[:10]
    inv = ["-i", str(docker_host.inventory_path)]
    res = run_driver(
        ["train", str(SCRIPTS / "ignores_sigterm.py"), *inv, "--image", IMAGE, "--image-from-local",
         "--engine", "docker", "--timeout", "40", "--grace", "1", "--", tag],
        tmp_path,
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 124, res.stderr
    assert f"ignoring {tag}" in res.stdout
    assert docker_host.pids_matching("th1", tag) == []
    assert docker_containers(docker_host) == []
