"""The controller against hostile input and other local users: values that look like Jinja are data, secrets
never stay in ansible-runner's files, and a driver killed early leaves no environment value on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from driverproc import DRIVER, REPO, SCRIPTS, driver_env, local_processes_matching, run_driver

HELLO = str(REPO / "examples" / "hello.py")


def files_holding(root: Path, needle: str) -> list[str]:
    """Every file under root whose bytes contain needle."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_a_path_or_value_holding_jinja_is_never_evaluated_here(testhosts, tmp_path):
    marks = [tmp_path / f"pwned-{n}" for n in range(3)]
    jinja = ["{{ lookup('pipe', 'touch " + str(mark) + "') }}" for mark in marks]
    folder = tmp_path / "scripts" / jinja[0]  # nested folders: the path keeps the whole expression
    folder.mkdir(parents=True)
    script = folder / "show_env.py"
    script.write_text("import os\nprint('X=' + os.environ['X'], flush=True)\n")
    out = tmp_path / "out" / jinja[2]
    res = run_driver(
        [
            "train",
            str(script),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--env",
            f"X={jinja[1]}",
            "--output-dir",
            str(out),
        ],
        tmp_path / "state",
    )
    assert res.returncode == 0, res.stderr
    assert f"X={jinja[1]}" in res.stdout  # the value arrives as it was given
    assert [m for m in marks if m.exists()] == []


def test_index_url_credentials_stay_in_no_local_file(testhosts, tmp_path):
    token = "tok-" + os.urandom(6).hex()
    state = tmp_path / "state"
    res = run_driver(
        [
            "train",
            HELLO,
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--index-url",
            f"https://user:{token}@127.0.0.1:9/simple",
        ],
        state,
    )
    assert res.returncode == 0, res.stderr
    assert files_holding(state, token) == []
    assert token not in res.stdout + res.stderr


def test_a_driver_killed_before_ansible_speaks_leaves_no_environment_value_on_disk(tmp_path):
    secret = "env-secret-" + os.urandom(6).hex()
    state = tmp_path / "state"
    env = {**driver_env(state), "MY_API_TOKEN": secret}
    proc = subprocess.Popen(
        [DRIVER, "train", str(SCRIPTS / "sleeper.py")],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # ansible-playbook started (its command line names the state directory) and has said nothing yet.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = [p for p in local_processes_matching(str(state)) if "ansible-playbook" in p]
            if started:
                break
            time.sleep(0.005)
        assert started, "ansible-playbook never started"
        proc.send_signal(signal.SIGKILL)  # closing the terminal, the OOM killer: no handler runs
        proc.wait(timeout=30)
        events = list(state.rglob("job_events/*.json"))
        assert files_holding(state, secret) == [], f"{len(events)} events so far"
    finally:
        if proc.poll() is None:
            proc.kill()
        deadline = time.monotonic() + 30
        while local_processes_matching(str(state)) and time.monotonic() < deadline:
            time.sleep(0.2)
