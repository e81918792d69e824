"""The SSH test hosts themselves: reachable, host keys verified, quiet, controllable."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time

import hosts as th
import pytest


def test_hosts_answer_over_ssh_as_trainer_with_sudo(testhosts):
    assert testhosts.names == ["th1", "th2"]
    for name in testhosts.names:
        out = testhosts.ssh(name, "hostname; id -un; sudo -n id -u").stdout.split()
        assert out == [name, "trainer", "0"]


def test_generated_configs_verify_host_keys(testhosts):
    inventory = testhosts.inventory_path.read_text()
    assert inventory.count("StrictHostKeyChecking=yes") == 2
    assert f"UserKnownHostsFile={testhosts.known_hosts_path}" in inventory
    assert "StrictHostKeyChecking no" not in testhosts.ssh_config_path.read_text()
    known = testhosts.known_hosts_path.read_text().splitlines()
    assert [line.split()[:2] for line in known] == [
        [f"[127.0.0.1]:{testhosts.port(n)}", "ssh-ed25519"] for n in testhosts.names
    ]
    assert oct(testhosts.key_path.stat().st_mode & 0o777) == "0o600"


def test_wrong_or_unknown_host_key_is_refused(testhosts, tmp_path):
    th2_key = testhosts.hosts["th2"].host_key
    wrong = tmp_path / "wrong"
    wrong.write_text(f"[127.0.0.1]:{testhosts.port('th1')} {th2_key}\n")
    empty = tmp_path / "empty"
    empty.write_text("")
    for known_hosts in (wrong, empty):
        argv = testhosts.ssh_argv("th1", "true")
        argv[1:1] = ["-o", f"UserKnownHostsFile={known_hosts}"]  # first -o wins over -F
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 255
        assert "Host key verification failed" in proc.stderr


def test_non_interactive_and_login_shells_print_nothing(testhosts):
    for command in ("true", "bash -lc true"):
        proc = testhosts.ssh("th1", command)
        assert (proc.stdout, proc.stderr) == ("", "")


def test_pids_matching_sees_background_processes(testhosts):
    testhosts.ssh("th2", "nohup sleep 4321 >/dev/null 2>&1 &")
    pids = testhosts.pids_matching("th2", r"^sleep 4321$")
    assert len(pids) == 1
    testhosts.ssh("th2", f"kill {pids[0]}")
    assert testhosts.pids_matching("th2", r"^sleep 4321$") == []


def test_nopython_host_survives_stop_and_start(start_testhosts):
    hs = start_testhosts(1, image=th.IMAGE_NOPYTHON)
    assert hs.ssh("th1", "command -v python3 python3.11", check=False).returncode == 1
    port = hs.port("th1")
    hs.stop_container("th1")
    proc = hs.ssh("th1", "true", check=False)
    assert proc.returncode == 255
    assert re.search(r"Connection (refused|reset|closed)", proc.stderr)
    hs.start_container("th1")  # same port, same host key: strict ssh works again
    assert hs.ssh("th1", "id -un").stdout == "trainer\n"
    assert hs.port("th1") == port
    hs.stop()
    assert th.stop_all(hs.label) == []


# -- drop_ssh / resume_ssh: sshd goes away, the host (and its jobs) stay -----------------
@pytest.fixture(scope="module")
def droppable(start_testhosts) -> th.HostSet:
    """A host of its own: these tests cut its SSH off (each leaves it resumed)."""
    return start_testhosts(1)


def _alive(hs: th.HostSet, pid: int) -> bool:
    """PID exists and is not a zombie (checked with podman exec, not ssh)."""
    stat = hs.exec("th1", ["ps", "-o", "stat=", "-p", str(pid)], check=False).stdout.strip()
    return bool(stat) and not stat.startswith("Z")


def _ticks(hs: th.HostSet) -> int:
    return int(hs.exec("th1", ["sh", "-c", "wc -l < /tmp/ticks"]).stdout)


def _wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_detached_job_survives_drop_and_resume_ssh(droppable):
    hs = droppable
    # A "training job": started over ssh, detached with setsid, writes a tick every 50 ms.
    job = "while :; do echo x >> /tmp/ticks; sleep 0.05; done"
    hs.ssh("th1", f"rm -f /tmp/ticks; setsid -f sh -c '{job}' </dev/null >/dev/null 2>&1")
    [pid] = hs.pids_matching("th1", r"^sh -c while :; do echo x >> /tmp/ticks")
    host_key = hs.exec("th1", ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout

    hs.drop_ssh("th1")
    assert hs.exec("th1", ["pgrep", "-x", "sshd"], check=False).returncode == 1  # no sshd at all
    before = _ticks(hs)
    assert _wait_until(lambda: _ticks(hs) > before + 3), "the job stopped while ssh was down"
    assert _alive(hs, pid)

    hs.resume_ssh("th1")
    assert hs.pids_matching("th1", r"^sh -c while :; do echo x >> /tmp/ticks") == [pid]
    assert hs.exec("th1", ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout == host_key
    # Its session is gone, so init (catatonit, --init) adopted it and reaps it: no zombie left.
    assert hs.exec("th1", ["ps", "-o", "ppid=", "-p", str(pid)]).stdout.strip() == "1"
    hs.ssh("th1", f"kill {pid}")
    assert _wait_until(lambda: not _alive(hs, pid))
    assert hs.exec("th1", ["ps", "-o", "stat=", "-p", str(pid)], check=False).stdout.strip() == ""


def test_ssh_is_refused_while_dropped_then_works_on_the_same_port(droppable):
    hs = droppable
    port, known_hosts = hs.port("th1"), hs.known_hosts_path.read_text()
    hs.drop_ssh("th1")
    hs.drop_ssh("th1")  # idempotent
    try:
        for attempt in range(2):
            if attempt:
                time.sleep(1.2)  # longer than the supervisor's poll: the pause holds
            proc = hs.ssh("th1", "true", check=False, timeout=30)
            assert proc.returncode == 255
            assert "Connection refused" in proc.stderr
    finally:
        hs.resume_ssh("th1")
    assert hs.ssh("th1", "id -un").stdout == "trainer\n"  # strict host key checking passes
    assert (hs.port("th1"), hs.known_hosts_path.read_text()) == (port, known_hosts)
    assert len(hs.pids_matching("th1", r"^sshd: /usr/sbin/sshd -D -e \[listener\]")) == 1
    hs.resume_ssh("th1")  # resuming a running sshd changes nothing
    assert len(hs.pids_matching("th1", r"^sshd: /usr/sbin/sshd -D -e \[listener\]")) == 1


def test_open_connections_and_control_master_break_on_drop(droppable):
    hs = droppable
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="cm", dir="/tmp") as d:  # short: sun_path <= 107 bytes

        def ssh(*args: str) -> list[str]:  # through the ControlMaster at d/%C
            argv = hs.ssh_argv("th1", *args)
            argv[1:1] = ["-o", f"ControlPath={d}/%C", "-o", "ControlPersist=no"]
            return argv

        def popen(argv: list[str]) -> subprocess.Popen[str]:
            procs.append(
                subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
            return procs[-1]

        def check() -> int:  # 0 while the master runs
            return subprocess.run(ssh("-O", "check"), capture_output=True, timeout=10).returncode

        try:
            master = popen(ssh("-o", "ControlMaster=yes", "-N"))
            assert _wait_until(lambda: check() == 0 or master.poll() is not None)
            assert master.poll() is None, master.communicate()
            via_mux = subprocess.run(
                ssh("-o", "ControlMaster=no", "hostname"), capture_output=True, text=True, timeout=30
            )
            assert via_mux.stdout == "th1\n"
            session = popen(ssh("-o", "ControlMaster=no", "sleep 300"))  # over the master
            plain = popen(hs.ssh_argv("th1", "sleep 300"))  # a connection of its own
            assert _wait_until(lambda: len(hs.pids_matching("th1", r"^sleep 300$")) == 2)

            hs.drop_ssh("th1")
            assert master.wait(timeout=10) == 255
            assert session.wait(timeout=10) == 255
            assert plain.wait(timeout=10) == 255
            assert "closed by remote host" in plain.communicate()[1]
            assert check() != 0  # the master is gone
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
            hs.resume_ssh("th1")
        master = popen(ssh("-o", "ControlMaster=yes", "-N"))  # a new master works after resume
        try:
            assert _wait_until(lambda: check() == 0)
        finally:
            master.kill()
            master.communicate()
    hs.ssh("th1", "pkill -x sleep || true")  # the sessions' sleeps outlive them (no pty, no SIGHUP)


def test_drop_ssh_needs_the_supervisor_image(droppable):
    # A container whose entrypoint lacks the supervisor would die with its sshd: refuse clearly.
    hs = droppable
    hs.exec("th1", ["mv", th.SUPERVISOR_PID_FILE, th.SUPERVISOR_PID_FILE + ".bak"])
    try:
        with pytest.raises(th.CommandError, match="no sshd supervisor"):
            hs.drop_ssh("th1")
    finally:
        hs.exec("th1", ["mv", th.SUPERVISOR_PID_FILE + ".bak", th.SUPERVISOR_PID_FILE])
    assert hs.ssh("th1", "true").returncode == 0


def test_stop_and_start_container_after_drop(droppable):
    hs = droppable
    hs.drop_ssh("th1")
    t0 = time.monotonic()
    hs.stop_container("th1", timeout=10)  # SIGTERM: catatonit -> supervisor, no 10 s wait for SIGKILL
    assert time.monotonic() - t0 < 5
    hs.start_container("th1")  # a fresh start clears the pause: sshd runs again
    assert hs.ssh("th1", "id -un").stdout == "trainer\n"
    hs.drop_ssh("th1")  # and the supervisor is back too
    hs.resume_ssh("th1")


# -- block_network, restart_container, home_size: the faults of tests/e2e/test_faults.py ----------------
def test_block_network_hangs_ssh_without_a_refusal_and_unblock_restores_it(droppable):
    hs = droppable
    hs.block_network("th1")
    try:
        started = time.monotonic()
        res = subprocess.run(
            [*hs.ssh_argv("th1", "true")[:-2], "-o", "ConnectTimeout=2", "th1", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        # Dropped packets: no "connection refused", the client waits until its own timeout.
        assert res.returncode == 255 and "timed out" in res.stderr, res.stderr
        assert time.monotonic() - started >= 1.5
    finally:
        hs.unblock_network("th1")
    hs.unblock_network("th1")  # idempotent
    assert hs.ssh("th1", "echo back").stdout == "back\n"


def test_restart_container_kills_every_process_and_keeps_the_files(droppable):
    hs = droppable
    hs.ssh("th1", "echo kept > ~/restart-mark; setsid -f sleep 600 </dev/null >/dev/null 2>&1")
    assert hs.pids_matching("th1", r"^sleep 600")
    hs.restart_container("th1")
    assert hs.pids_matching("th1", r"^sleep 600") == []
    assert hs.ssh("th1", "cat ~/restart-mark").stdout == "kept\n"


def test_home_size_gives_a_small_disk_of_trainer_s_own(start_testhosts):
    hs = start_testhosts(1, home_size="16m")
    out = hs.ssh(
        "th1", "stat -c %U ~; df -k --output=size ~ | tail -1; ls ~/.ssh/authorized_keys"
    ).stdout.split()
    assert out[0] == "trainer" and int(out[1]) == 16 * 1024 and out[2].endswith("authorized_keys")
    full = hs.ssh("th1", "head -c 20M /dev/zero > ~/fill", check=False)
    assert full.returncode != 0 and "No space left on device" in full.stderr
