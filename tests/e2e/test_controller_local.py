"""The controller against other local users and what a cloned directory holds: the SSH control sockets'
directory cannot be planted, shell completion reads no ansible.cfg of the current directory,
--accept-new-host-keys keeps the user's ssh arguments, and a job id never leaves the jobs root (here or on a
host)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import subprocess
import uuid
from pathlib import Path

from driverproc import DRIVER, REPO, driver_env, error_lines, run_driver

HELLO = str(REPO / "examples" / "hello.py")


def test_a_planted_control_socket_directory_is_not_followed(testhosts, tmp_path):
    state = tmp_path / "state-with-a-path-too-long-for-sockets"
    # What the driver used to make when the state directory's path is too long: a name anyone can compute.
    tag = hashlib.sha256(str(state).encode()).hexdigest()[:8]
    planted = Path(f"/tmp/remote-trainer-{os.getuid()}-cp-{tag}")
    target = tmp_path / "chosen-by-another-user"
    target.mkdir(mode=0o700)
    planted.symlink_to(target)
    try:
        env = {"XDG_RUNTIME_DIR": ""}
        res = run_driver(
            ["train", HELLO, "-i", str(testhosts.inventory_path), "-l", "th1"], state, extra_env=env
        )
        assert res.returncode == 0, res.stderr
        assert list(target.iterdir()) == []  # nothing was made through the link
        used = Path((state / "cp-dir").read_text())
        st = os.lstat(used)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
        assert used != planted and used.parent == Path("/tmp")
    finally:
        planted.unlink(missing_ok=True)


def test_a_remembered_socket_directory_replaced_by_a_link_is_not_used(tmp_path):
    state = tmp_path / "state-with-a-path-too-long-for-sockets"
    state.mkdir(mode=0o700)
    target = tmp_path / "chosen-by-another-user"
    target.mkdir(mode=0o700)
    # After a reboot emptied /tmp, another user who saw the name plants it again (here: a link).
    gone = Path(f"/tmp/rt-cp-{uuid.uuid4().hex[:8]}")
    gone.symlink_to(target)
    try:
        (state / "cp-dir").write_text(str(gone))
        res = run_driver(["train", HELLO], state, extra_env={"XDG_RUNTIME_DIR": ""})
        assert res.returncode == 0, res.stderr
        assert list(target.iterdir()) == []
        used = Path((state / "cp-dir").read_text())
        assert used != gone and not used.is_symlink() and stat.S_IMODE(used.stat().st_mode) == 0o700
    finally:
        gone.unlink(missing_ok=True)


def bash_complete(tmp_path: Path, words: list[str], cwd: Path) -> list[str]:
    script = run_driver(["completion", "bash"], tmp_path).stdout
    (tmp_path / "driver.bash").write_text(script)
    line = " ".join(shlex.quote(w) for w in words)
    program = (
        f"source {tmp_path / 'driver.bash'}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_driver_completion driver\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = driver_env(tmp_path)
    env["PATH"] = f"{Path(DRIVER).parent}:{env['PATH']}"
    env.pop("ANSIBLE_CONFIG", None)
    res = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


def test_completing_hosts_in_a_cloned_directory_runs_none_of_its_ansible_cfg(tmp_path):
    clone = tmp_path / "clone"
    (clone / "plugins").mkdir(parents=True)
    mark = tmp_path / "ran"
    (clone / "ansible.cfg").write_text(
        "[defaults]\ninventory_plugins = ./plugins\n[inventory]\nenable_plugins = pwn, ini\n"
    )
    (clone / "plugins" / "pwn.py").write_text(
        f"open({str(mark)!r}, 'w').write('ran')\n"
        "from ansible.plugins.inventory import BaseInventoryPlugin\n"
        "class InventoryModule(BaseInventoryPlugin):\n"
        "    NAME = 'pwn'\n"
        "    def verify_file(self, path):\n"
        "        return False\n"
    )
    (clone / "hosts.ini").write_text("gpu1 ansible_host=10.0.0.1\ngpu2 ansible_host=10.0.0.2\n")
    hosts = bash_complete(tmp_path, ["driver", "train", "t.py", "-i", "hosts.ini", "-l", "g"], cwd=clone)
    assert hosts == ["gpu1", "gpu2"]
    assert not mark.exists()


def test_accepting_new_host_keys_keeps_the_users_ssh_arguments(testhosts, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    # The key only in the user's ANSIBLE_SSH_ARGS: replaced, it would not be offered (exit 71).
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"th1 ansible_host=127.0.0.1 ansible_port={testhosts.port('th1')} ansible_user=trainer "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known}'\n"
    )
    env = {"ANSIBLE_SSH_ARGS": f"-o IdentityFile={testhosts.key_path} -o IdentitiesOnly=yes"}
    res = run_driver(
        ["train", HELLO, "-i", str(inventory), "--accept-new-host-keys"], tmp_path / "state", extra_env=env
    )
    assert res.returncode == 0, res.stderr
    assert known.read_text().strip(), "the accepted key was not remembered"


def test_a_job_id_that_would_leave_the_jobs_root_is_refused(tmp_path):
    state = tmp_path / "state"
    for command in (["logs", "../x"], ["status", "../../etc"], ["cancel", "a/b"], ["wait", ".."]):
        res = run_driver(command, state)
        assert res.returncode == 2, (command, res.stderr)
        errors = error_lines(res.stderr)
        assert len(errors) == 1 and f"invalid job id {command[1]!r}" in errors[0], res.stderr
        assert "Traceback" not in res.stderr and res.stdout == ""


def test_a_host_refuses_a_job_id_that_would_leave_its_jobs_root(testhosts, tmp_path):
    """The role used without the driver: its contract refuses the id before anything is made on the host."""
    name = "escaped-" + uuid.uuid4().hex[:6]
    job = {"id": f"../../{name}", "script": HELLO, "spec_file": "", "created": 0, "output_dir": str(tmp_path)}
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    res = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            str(REPO / "ansible_collections/remote_trainer/core/playbooks/train.yml"),
            "-e",
            json.dumps({"training_job": job}),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert res.returncode != 0
    assert f"invalid id '../../{name}'" in res.stdout + res.stderr
    assert testhosts.ssh("th1", f"ls -d ~/{name} 2>/dev/null; true").stdout.strip() == ""
