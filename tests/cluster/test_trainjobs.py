"""TrainJobs on the `remote` runtime against the real cluster (API server, kubelet, Trainer v2.3.0, JobSet),
the script running on an sshd test host reached from the pod: exit codes, live logs, deletion and deadlines
stopping the remote process tree, what of the pod's environment reaches the host, two jobs at once."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO, driver, kubectl, wait

pytestmark = pytest.mark.cluster

SCRIPTS = REPO / "tests" / "scripts"
LABEL = "jobset.sigs.k8s.io/jobset-name"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def trainjob(kube, name: str) -> dict:
    return json.loads(kubectl(kube, "get", "trainjob", name, "-o", "json"))


def condition(kube, name: str) -> tuple[str, str]:
    for cond in trainjob(kube, name).get("status", {}).get("conditions", []):
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return cond["type"], cond.get("message", "")
    return "", ""


def pods(kube, name: str) -> list[dict]:
    return json.loads(kubectl(kube, "get", "pods", "-l", f"{LABEL}={name}", "-o", "json"))["items"]


@pytest.fixture
def cleanup(kube):
    names: list[str] = []
    yield names
    for name in names:
        kubectl(
            kube, "delete", "trainjob", name, "--ignore-not-found", "--wait=true", check=False, timeout=180
        )


def test_follow_streams_the_output_and_a_success_completes(kube, installed, cleanup):
    name = unique("ok")
    cleanup.append(name)
    res = driver(kube, "submit", "-f", str(SCRIPTS / "counter.py"), "--name", name, "--", "5", "0.1", "0")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "".join(f"line {i}\n" for i in range(5)) + "end\n"
    assert condition(kube, name)[0] == "Complete"
    assert f"trainjob/{name} Complete (exit code 0)" in res.stderr


def test_a_failing_script_fails_the_trainjob_once_with_its_exit_code(kube, installed, cleanup):
    name = unique("fail")
    cleanup.append(name)
    res = driver(kube, "submit", "--follow", str(SCRIPTS / "exit_with.py"), "--name", name, "--", "3")
    assert res.returncode == 3, res.stderr
    assert res.stdout.count("about to end") == 1
    cond, message = condition(kube, name)
    assert cond == "Failed" and message, trainjob(kube, name)
    assert f"trainjob/{name} Failed (exit code 3): {message}" in res.stderr
    (pod,) = pods(kube, name)
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 3
    # Run once: the runtime's Job neither restarts the container (OnFailure) nor retries the pod.
    time.sleep(5)
    assert status["restartCount"] == 0 and len(pods(kube, name)) == 1
    described = kubectl(kube, "describe", "trainjob", name)
    assert "Failed" in described


def test_deleting_a_running_trainjob_stops_the_remote_tree_before_the_pod_is_gone(kube, installed, pod_host):
    hs, _ = pod_host
    name = unique("del")
    tag = uuid.uuid4().hex
    assert driver(kube, "submit", str(SCRIPTS / "sleeper.py"), "--name", name, "--", tag).returncode == 0
    wait("the script on th1", lambda: len(hs.pids_matching("th1", tag)) == 2)  # script and its child
    kubectl(kube, "delete", "trainjob", name, "--wait=false")
    start = time.monotonic()
    remote_dead = pod_gone = None
    while time.monotonic() - start < 120 and pod_gone is None:
        if remote_dead is None and not hs.pids_matching("th1", tag):
            remote_dead = time.monotonic() - start
        if not pods(kube, name):
            pod_gone = time.monotonic() - start
        time.sleep(0.1)
    assert remote_dead is not None, "the remote processes outlived the pod"
    assert pod_gone is not None and remote_dead <= pod_gone
    assert hs.pids_matching("th1", tag) == []


def test_active_deadline_stops_the_remote_run_and_fails_the_trainjob(kube, installed, pod_host, cleanup):
    hs, _ = pod_host
    name = unique("deadline")
    cleanup.append(name)
    tag = uuid.uuid4().hex
    res = driver(
        kube, "submit", "-f", "--timeout", "20s", str(SCRIPTS / "sleeper.py"), "--name", name, "--", tag
    )
    assert res.stdout.startswith(f"sleeping {tag}\n"), res.stdout + res.stderr
    assert res.returncode == 124, res.stderr  # as `driver train --timeout`
    cond, message = wait("the TrainJob to fail", lambda: condition(kube, name)[0] and condition(kube, name))
    assert cond == "Failed" and "deadline" in message.lower(), message
    assert hs.pids_matching("th1", tag) == []


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace(kube, installed, pod_host):
    hs, _ = pod_host
    name = unique("stubborn")
    tag = uuid.uuid4().hex
    assert (
        driver(kube, "submit", str(SCRIPTS / "ignores_sigterm.py"), "--name", name, "--", tag).returncode == 0
    )
    wait("the script on th1", lambda: hs.pids_matching("th1", tag))
    start = time.monotonic()
    kubectl(kube, "delete", "trainjob", name, "--wait=false")
    wait("the remote script to die", lambda: not hs.pids_matching("th1", tag), timeout=60)
    took = time.monotonic() - start
    # driver train's --grace (10 s) between SIGTERM and SIGKILL, inside the pod's 60 s.
    assert 8 < took < 40, took
    wait("the pod to go", lambda: not pods(kube, name), timeout=60)


def test_a_flood_of_100000_lines_arrives_whole_and_in_order(kube, installed, cleanup):
    name = unique("flood")
    cleanup.append(name)
    res = driver(kube, "submit", "-f", str(SCRIPTS / "flood.py"), "--name", name, "--", "100000", timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert len(lines) == 100000 and lines == [f"line {i}" for i in range(100000)]
    logs = kubectl(kube, "logs", "-l", f"{LABEL}={name}", "-c", "node", "--tail=-1").splitlines()
    assert [line for line in logs if line.startswith("line ")] == lines


def test_only_what_the_trainjob_names_reaches_the_host(kube, installed, cleanup):
    name = unique("env")
    cleanup.append(name)
    res = driver(kube, "submit", "-f", str(SCRIPTS / "env_names.py"), "--name", name, "-e", "MY_SETTING=1")
    assert res.returncode == 0, res.stderr
    names = set(res.stdout.split())
    assert "MY_SETTING" in names
    # Set by the Job controller (indexed Jobs) and JobSet for the pod, not by the user.
    assert not names & {"JOB_COMPLETION_INDEX", "HOSTNAME"}, sorted(names)
    leaked = {
        n for n in names if n.startswith(("KUBERNETES", "JOBSET", "TRAINJOB", "PET_", "REMOTE_TRAINER"))
    }
    leaked |= {n for n in names if n.endswith(("_SERVICE_HOST", "_SERVICE_PORT"))}
    assert leaked == set(), leaked


def test_two_trainjobs_at_once_on_the_same_host_keep_apart(kube, installed, cleanup):
    names = [unique("twin"), unique("twin")]
    cleanup.extend(names)

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return driver(
            kube, "submit", "-f", str(SCRIPTS / "echo_args.py"), "--name", name, "--", name, timeout=300
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, names))
    for name, res in zip(names, results, strict=True):
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["args"] == [name]
        assert condition(kube, name)[0] == "Complete"


def test_train_options_a_trainjob_cannot_carry_are_refused(kube):
    res = driver(kube, "submit", str(SCRIPTS / "exit_with.py"), "--workdir", ".", "--", "0")
    assert res.returncode == 2
    assert "--workdir is a `driver train` option, not one of `driver submit`" in res.stderr


def test_ctrl_c_of_submit_follow_deletes_the_trainjob_and_stops_the_remote_run(kube, installed, pod_host):
    hs, _ = pod_host
    name = unique("ctrlc")
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "driver"), "submit", "-f", str(SCRIPTS / "sleeper.py"), "--name", name,
         "--", tag],
        env=kube, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"sleeping {tag}\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"deleted trainjob/{name}; its pod stopped the remote run" in err
    assert hs.pids_matching("th1", tag) == []
    # The TrainJob went first (background propagation): nothing can apply its JobSet again, so no new pod
    # starts the script again while the garbage collector removes the rest.
    assert kubectl(kube, "get", "trainjob", name, "--ignore-not-found", "-o", "name").strip() == ""
    wait(
        "the JobSet to be gone",
        lambda: kubectl(kube, "get", "jobset", name, "--ignore-not-found", "-o", "name").strip() == "",
        timeout=60,
    )
    time.sleep(3)
    selector = f"jobset.sigs.k8s.io/jobset-name={name}"
    assert kubectl(kube, "get", "pods", "-l", selector, "-o", "name").strip() == ""
    assert hs.pids_matching("th1", tag) == []


def test_a_changed_host_key_fails_the_trainjob_with_a_clear_line(kube, installed, pod_host, tmp_path):
    hs, files = pod_host
    ns = unique("badkey")
    kubectl(kube, "create", "namespace", ns)
    try:
        # th1's address with another host's key: what a man in the middle (or a rebuilt host) shows.
        ip = hs.container_ip("th1")
        other = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], capture_output=True
        )
        assert other.returncode == 0
        kind, body = (tmp_path / "k.pub").read_text().split()[:2]
        (tmp_path / "known_hosts").write_text(f"{ip} {kind} {body}\n")
        secret = [
            f"--from-file=id_ed25519={files / 'id_ed25519'}",
            f"--from-file=known_hosts={tmp_path / 'known_hosts'}",
        ]
        kubectl(kube, "-n", ns, "create", "secret", "generic", "remote-trainer-ssh", *secret)
        inventory = f"--from-file=hosts.ini={files / 'hosts.ini'}"
        kubectl(kube, "-n", ns, "create", "secret", "generic", "remote-trainer-inventory", inventory)
        res = driver(kube, "submit", "-f", "-n", ns, str(SCRIPTS / "exit_with.py"), "--", "0", timeout=300)
        assert res.returncode == 72, res.stdout + res.stderr
        logs = res.stdout
        assert "host key" in logs.lower() and "th1" in logs, logs
        key = (files / "id_ed25519").read_text()
        body = key.splitlines()[1]
        assert body not in logs and body not in res.stderr
    finally:
        kubectl(kube, "delete", "namespace", ns, "--wait=false", check=False)


def test_submit_packages_and_limit_reach_the_host(kube, installed, cleanup):
    name = unique("pkgs")
    cleanup.append(name)
    res = driver(
        kube, "submit", "-f", str(SCRIPTS / "uses_six.py"), "--name", name, "--packages", "six==1.16.0",
        "--limit", "th1", timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    version, path = res.stdout.split()
    assert version == "1.16.0" and "/.cache/remote-trainer/" in path  # a venv the driver made on th1
    nowhere = unique("nohost")
    cleanup.append(nowhere)
    res = driver(
        kube, "submit", "-f", str(SCRIPTS / "exit_with.py"), "--name", nowhere, "--limit", "th9", "--", "0"
    )
    assert res.returncode == 69, res.stdout + res.stderr  # --limit matches no host, as in driver train


def test_the_sdk_cluster_example_runs_on_the_host(kube, installed):
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), str(REPO / "examples" / "sdk_cluster.py")],
        env=kube, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "remote" in res.stdout
    assert "with lr=0.01" in res.stdout and "training on " in res.stdout
