"""Bad input: one error line naming the thing, a hint, a distinct exit code, no traceback, nothing left."""

from __future__ import annotations

import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from driverproc import DRIVER, REPO, driver_env, error_lines, local_processes_matching, run_driver

HELLO = str(REPO / "examples" / "hello.py")


def assert_clean_failure(res: subprocess.CompletedProcess, code: int, names: str, state_dir: Path) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    errors = error_lines(res.stderr)
    assert len(errors) == 1, res.stderr
    assert names in errors[0], errors[0]
    assert "hint: " in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stdout == ""
    assert local_processes_matching(str(state_dir)) == []


def host_inventory(tmp_path: Path, testhosts, name: str = "th1", **overrides: str) -> Path:
    """An inventory for one test host, with some of its connection variables replaced."""
    known = overrides.pop("known_hosts", str(testhosts.known_hosts_path))
    strict = overrides.pop("strict", "yes")
    hostvars = {
        "ansible_host": "127.0.0.1",
        "ansible_port": str(testhosts.port(name)),
        "ansible_user": "trainer",
        "ansible_ssh_private_key_file": str(testhosts.key_path),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known}"
        + (f" -o StrictHostKeyChecking={strict}" if strict else ""),
    }
    hostvars.update(overrides)
    line = name + " " + " ".join(f"{k}={shlex.quote(v)}" for k, v in hostvars.items())
    path = tmp_path / f"inventory-{name}.ini"
    path.write_text(line + "\n")
    return path


def test_missing_script(tmp_path):
    res = run_driver(["train", "no/such/script.py"], tmp_path)
    assert_clean_failure(res, 66, "no/such/script.py", tmp_path)


def test_script_is_a_directory(tmp_path):
    res = run_driver(["train", "examples"], tmp_path)
    assert_clean_failure(res, 67, "examples", tmp_path)


def test_missing_workdir(tmp_path):
    res = run_driver(["train", HELLO, "--workdir", "no-such-dir"], tmp_path)
    assert_clean_failure(res, 74, "no-such-dir", tmp_path)


@pytest.mark.parametrize("value", ["soon", "-5m", "10x", "0", ""])
def test_invalid_timeout(value, tmp_path):
    res = run_driver(["train", HELLO, "--timeout", value], tmp_path)
    assert_clean_failure(res, 64, "--timeout", tmp_path)


@pytest.mark.parametrize("value", ["1BAD=x", "NO SPACE=x", "=x", "UNSET_VARIABLE_FOR_TEST"])
def test_invalid_env(value, tmp_path):
    res = run_driver(["train", HELLO, "--env", value], tmp_path)
    assert_clean_failure(res, 65, "--env", tmp_path)


def test_an_invalid_env_name_does_not_print_its_value(tmp_path):
    """The value after '=' may be a secret: the error names the variable alone."""
    res = run_driver(["train", HELLO, "--env", "BAD NAME=s3cr3t-value"], tmp_path)
    assert_clean_failure(res, 65, "'BAD NAME'", tmp_path)
    assert "s3cr3t-value" not in res.stdout + res.stderr


def test_missing_inventory(tmp_path):
    res = run_driver(["train", HELLO, "-i", "no-such-inventory.ini"], tmp_path)
    assert_clean_failure(res, 68, "no-such-inventory.ini", tmp_path)


def test_unparsable_inventory(tmp_path):
    bad = tmp_path / "broken.ini"
    bad.write_text("[gpus\nhost1 ansible_port=twenty=two\n")
    res = run_driver(["train", HELLO, "-i", str(bad)], tmp_path)
    assert_clean_failure(res, 68, "broken.ini", tmp_path)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--launcher", "torchrun", "--nproc-per-node", "0"], "--nproc-per-node '0'"),
        (["--launcher", "torchrun", "--nproc-per-node", "many"], "--nproc-per-node 'many'"),
        (["--nproc-per-node", "4"], "needs a launcher"),
    ],
)
def test_invalid_nproc_per_node(args, names, tmp_path):
    res = run_driver(["train", HELLO, *args], tmp_path)
    assert_clean_failure(res, 80, names, tmp_path)


@pytest.mark.parametrize("argv", [["train", HELLO], ["provision"]], ids=["train", "provision"])
def test_missing_collection_is_named(tmp_path, argv):
    """An Ansible without ansible.posix (ansible-core alone) is one line naming the collection, before any
    host does anything: even a job on this machine (which copies its outputs without rsync) stops at once."""
    empty = tmp_path / "collections"
    empty.mkdir()
    env = {"ANSIBLE_COLLECTIONS_PATH": str(empty), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False"}
    res = run_driver(argv, tmp_path, extra_env=env)
    assert_clean_failure(res, 125, "ansible.posix", tmp_path)
    assert "collection ansible.posix is not installed" in res.stderr and "inventory" not in res.stderr


def test_limit_matches_no_host(testhosts, tmp_path):
    res = run_driver(["train", HELLO, "-i", str(testhosts.inventory_path), "--limit", "gpu-node-9"], tmp_path)
    assert_clean_failure(res, 69, "gpu-node-9", tmp_path)


def test_connection_refused(testhosts, tmp_path):
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inventory = host_inventory(tmp_path, testhosts, ansible_port=str(port))
    res = run_driver(["train", HELLO, "-i", str(inventory)], tmp_path)
    assert_clean_failure(res, 70, "th1", tmp_path)
    assert "refused" in res.stderr


def test_unknown_host_name(testhosts, tmp_path):
    inventory = host_inventory(tmp_path, testhosts, ansible_host="no-such-host.invalid")
    # In a network namespace of its own, the name lookup fails without a packet leaving this machine.
    res = subprocess.run(
        ["unshare", "--net", DRIVER, "train", HELLO, "-i", str(inventory)],
        capture_output=True,
        text=True,
        timeout=120,
        env=driver_env(tmp_path),
        cwd=REPO,
    )
    assert_clean_failure(res, 70, "th1", tmp_path)
    assert "resolve" in res.stderr


def test_authentication_failure(testhosts, tmp_path):
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    inventory = host_inventory(
        tmp_path,
        testhosts,
        ansible_ssh_private_key_file=str(other_key),
        ansible_ssh_extra_args="-o IdentitiesOnly=yes",
    )
    res = run_driver(["train", HELLO, "-i", str(inventory)], tmp_path)
    assert_clean_failure(res, 71, "th1", tmp_path)


def test_unknown_host_key_is_refused_unless_accepted(testhosts, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    inventory = host_inventory(tmp_path, testhosts, known_hosts=str(known), strict="")
    res = run_driver(["train", HELLO, "-i", str(inventory)], tmp_path)
    assert_clean_failure(res, 72, "th1", tmp_path)
    assert "unknown" in error_lines(res.stderr)[0]  # not "changed": that one warns of an attack
    hint = next(line for line in res.stderr.splitlines() if line.startswith("hint:"))
    assert "--accept-new-host-keys" in hint and "known_hosts" in hint and "attack" not in hint
    assert known.read_text() == ""

    res = run_driver(["train", HELLO, "-i", str(inventory), "--accept-new-host-keys"], tmp_path)
    assert res.returncode == 0, res.stderr
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{testhosts.port('th1')}", "-f", str(known)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, "the accepted key was not remembered"


def test_no_python_on_the_host(start_testhosts, tmp_path):
    import hosts as th

    bare = start_testhosts(1, image=th.IMAGE_NOPYTHON)
    res = run_driver(["train", HELLO, "-i", str(bare.inventory_path)], tmp_path)
    assert_clean_failure(res, 73, "th1", tmp_path)
    assert bare.ssh("th1", "ls -A ~/.remote-trainer/jobs 2>/dev/null; true").stdout == ""
    assert "no usable python on th1" in res.stderr
