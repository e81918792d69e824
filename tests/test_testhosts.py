"""The SSH test hosts themselves: reachable, host keys verified, quiet, controllable."""

from __future__ import annotations

import re
import subprocess

import hosts as th


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
