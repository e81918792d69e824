"""`driver provision` and the remote_host role against real sshd hosts (packages from a local wheelhouse)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time

import hosts as th
from driverproc import DRIVER, driver_env, error_lines, run_driver

# Fails on the host when a requirement set's lock (an flock) is held.
FREE_LOCKS = (
    "python3 -c 'import fcntl, glob, os; "
    "[fcntl.flock(open(f), fcntl.LOCK_EX | fcntl.LOCK_NB) "
    'for f in glob.glob(os.path.expanduser("~/.cache/remote-trainer/locks/*"))]\''
)


def offline(wheelhouse) -> list[str]:
    """Options that make a host install from the local test wheelhouse, with no index."""
    return ["--wheelhouse", str(wheelhouse), "--no-index"]


def provision(hs, tmp_path, *args: str, inventory=None):
    return run_driver(["provision", "-i", str(inventory or hs.inventory_path), *args], tmp_path, timeout=300)


def venv_of(stdout: str, host: str) -> str:
    match = re.search(rf"^{host}: .* (?:installed in|ready in) venv (\S+)$", stdout, re.M)
    assert match, stdout
    return match.group(1)


def test_requirements_on_two_hosts_then_cached_and_a_second_set_beside(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(2)
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.16.0\n")

    start = time.monotonic()
    first = provision(hs, tmp_path, "-r", str(req), *offline(wheelhouse))
    first_time = time.monotonic() - start
    assert first.returncode == 0, first.stderr
    for host in ("th1", "th2"):
        assert f"{host}: python /usr/bin/python3" in first.stdout
        venv = venv_of(first.stdout, host)
        assert "requirements installed in" in first.stdout
        got = hs.ssh(host, f"{venv}/bin/python -c 'import six; print(six.__version__)'").stdout
        assert got == "1.16.0\n"

    start = time.monotonic()
    again = provision(hs, tmp_path, "-r", str(req), *offline(wheelhouse))
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - start < first_time
    assert again.stdout.count("requirements ready in venv") == 2
    assert venv_of(again.stdout, "th1") == venv_of(first.stdout, "th1")

    second = provision(hs, tmp_path, "-r", str(req), "--packages", "iniconfig==2.0.0", *offline(wheelhouse))
    assert second.returncode == 0, second.stderr
    other = venv_of(second.stdout, "th1")
    assert other != venv_of(first.stdout, "th1")
    ready = hs.ssh("th1", "ls ~/.cache/remote-trainer/venvs/*/.ready | wc -l").stdout.strip()
    assert ready == "2"
    hs.ssh("th1", f"{other}/bin/python -c 'import six, iniconfig'")


def test_train_runs_the_script_with_the_venv(testhosts, wheelhouse, tmp_path):
    script = tmp_path / "uses_six.py"
    script.write_text("import sys, six\nprint(six.__version__, sys.prefix)\n")
    res = run_driver(
        [
            "train",
            str(script),
            "-i",
            str(testhosts.inventory_path),
            "-l",
            "th1",
            "--packages",
            "six==1.16.0",
            *offline(wheelhouse),
        ],
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    version, prefix = res.stdout.split()
    assert version == "1.16.0"
    assert "/.cache/remote-trainer/venvs/" in prefix


def test_offline_host_is_provisioned_from_the_wheelhouse(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    pid = th._podman("inspect", "-f", "{{.State.Pid}}", hs.container("th1")).stdout.strip()
    # No route out of the host: only its own subnet (where the published SSH port arrives) is reachable.
    subprocess.run(["nsenter", "-t", pid, "-n", "ip", "route", "del", "default"], check=True)
    routes = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "route"], capture_output=True, text=True
    ).stdout
    assert "default" not in routes
    res = provision(
        hs,
        tmp_path,
        "--packages",
        "six==1.16.0 iniconfig==2.0.0",
        *offline(wheelhouse),
    )
    assert res.returncode == 0, res.stderr
    venv = venv_of(res.stdout, "th1")
    hs.ssh("th1", f"{venv}/bin/python -c 'import six, iniconfig'")


def test_missing_package_fails_clearly_and_a_half_built_venv_is_not_reused(
    start_testhosts, wheelhouse, tmp_path
):
    hs = start_testhosts(1)
    res = provision(
        hs,
        tmp_path,
        "--packages",
        "no-such-package-xyz",
        "--find-links",
        "/home/trainer/wheels",
        "--no-index",
    )
    assert res.returncode == 75, res.stderr
    (line,) = error_lines(res.stderr)
    assert "th1" in line and "no-such-package-xyz" in line
    assert "Traceback" not in res.stderr

    # Same requirements set, failing half-way: the venv exists but is not marked ready.
    args = ["--packages", "six==1.16.0", "--find-links", "/home/trainer/wheels", "--no-index"]
    res = provision(hs, tmp_path, *args)
    assert res.returncode == 75
    assert "six" in error_lines(res.stderr)[0]
    half = hs.ssh(
        "th1",
        "ls -d ~/.cache/remote-trainer/venvs/*/ | wc -l; ls ~/.cache/remote-trainer/venvs/*/.ready "
        "2>/dev/null | wc -l",
    ).stdout.split()
    assert int(half[0]) >= 1 and half[1] == "0"  # venvs exist, none marked ready

    wheel = next(wheelhouse.glob("six-*.whl"))
    hs.ssh("th1", "mkdir -p wheels")
    subprocess.run(
        hs.ssh_argv("th1", f"cat > wheels/{shlex.quote(wheel.name)}"), stdin=wheel.open("rb"), check=True
    )
    res = provision(hs, tmp_path, *args)
    assert res.returncode == 0, res.stderr
    assert "requirements installed in venv" in res.stdout
    hs.ssh("th1", f"{venv_of(res.stdout, 'th1')}/bin/python -c 'import six'")


def test_python_outside_the_default_path_found_via_the_inventory(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    hs.exec(
        "th1",
        ["sh", "-c", "mkdir -p /opt/py/bin && mv /usr/bin/python3.11 /opt/py/bin/ && rm -f /usr/bin/python3"],
    )
    res = provision(hs, tmp_path)
    assert res.returncode == 73, res.stderr
    assert "no usable python on th1" in res.stderr

    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        hs.inventory_path.read_text().replace(
            "ansible_user=trainer", "ansible_user=trainer remote_host_python=/opt/py/bin/python3.11"
        )
    )
    res = provision(
        hs,
        tmp_path,
        "--packages",
        "six==1.16.0",
        *offline(wheelhouse),
        inventory=inventory,
    )
    assert res.returncode == 0, res.stderr
    assert "th1: python /opt/py/bin/python3.11" in res.stdout

    script = tmp_path / "where.py"
    script.write_text("import six, sys\nprint(sys.version_info[:2] >= (3, 9))\n")
    res = run_driver(
        [
            "train",
            str(script),
            "-i",
            str(inventory),
            "--packages",
            "six==1.16.0",
            *offline(wheelhouse),
        ],
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "True\n"


def test_no_python_at_all(start_testhosts, tmp_path):
    hs = start_testhosts(1, image=th.IMAGE_NOPYTHON)
    res = provision(hs, tmp_path)
    assert res.returncode == 73
    (line,) = error_lines(res.stderr)
    assert line.startswith("error: no usable python on th1")
    assert "Traceback" not in res.stderr


def test_inventory_environment_reaches_pip_and_the_job(testhosts, tmp_path):
    inventory = tmp_path / "inventory.ini"
    env = '{"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "localhost"}'
    inventory.write_text(
        testhosts.inventory_path.read_text().replace(
            "ansible_user=trainer", f"ansible_user=trainer remote_host_environment='{env}'"
        )
    )
    script = tmp_path / "show_env.py"
    script.write_text(
        "import os\nprint(os.environ['HTTPS_PROXY'], os.environ['NO_PROXY'], os.environ['MINE'])\n"
    )
    res = run_driver(["train", str(script), "-i", str(inventory), "-l", "th1", "--env", "MINE=x"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "http://proxy.example:3128 localhost x\n"


def test_concurrent_first_provisions_of_one_set_build_it_once(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    argv = [
        DRIVER,
        "provision",
        "-i",
        str(hs.inventory_path),
        "--packages",
        "six==1.16.0 iniconfig==2.0.0",
        *offline(wheelhouse),
    ]
    procs = [
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=driver_env(tmp_path)
        )
        for _ in range(4)
    ]
    results = [(p.communicate(timeout=600), p.returncode) for p in procs]
    assert [code for _, code in results] == [0, 0, 0, 0], [err for (_, err), _ in results]
    outputs = "".join(out for (out, _), _ in results)
    assert outputs.count("requirements installed in venv") + outputs.count("requirements ready in venv") == 4
    venvs = hs.ssh("th1", "ls -d ~/.cache/remote-trainer/venvs/*/").stdout.split()
    assert len(venvs) == 1
    hs.ssh("th1", f"{venvs[0]}bin/python -c 'import six, iniconfig'")
    # No lock is held any more (each is an flock, released when its builder ends).
    hs.ssh("th1", FREE_LOCKS)


def test_clean_removes_unfinished_venvs_and_keeps_ready_and_busy_ones(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    ready = provision(hs, tmp_path, "--packages", "six==1.16.0", *offline(wheelhouse))
    assert ready.returncode == 0, ready.stderr
    failed = provision(hs, tmp_path, "--packages", "no-such-package-xyz", *offline(wheelhouse))
    assert failed.returncode == 75, failed.stderr
    venvs = "~/.cache/remote-trainer/venvs"
    # A set that another driver is installing right now: its lock is held.
    hs.ssh("th1", f"mkdir -p {venvs}/busy0000/bin")
    holder = subprocess.Popen(
        hs.ssh_argv(
            "th1",
            'python3 -c \'import fcntl, os, sys, time; f = open(os.path.expanduser(sys.argv[1]), "a"); '
            'fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(60)\' '
            "~/.cache/remote-trainer/locks/busy0000.lock",
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    before = hs.ssh("th1", f"ls {venvs}").stdout.split()
    assert len([name for name in before if not name.endswith(".txt")]) == 3, before

    res = run_driver(["clean", "-i", str(hs.inventory_path)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(
        r"th1: removed 0 job directories, 1 unfinished venvs \(\d+\.\d MiB\)\n", res.stdout
    ), res.stdout
    after = hs.ssh("th1", f"ls {venvs}").stdout.split()
    kept = venv_of(ready.stdout, "th1").rsplit("/", 1)[1]
    assert sorted(after) == sorted(["busy0000", kept, f"{kept}.txt"]), after
    hs.ssh("th1", f"{venv_of(ready.stdout, 'th1')}/bin/python -c 'import six'")

    again = run_driver(["clean", "-i", str(hs.inventory_path)], tmp_path)
    assert again.stdout == "th1: removed 0 job directories\n", again.stdout
    # Its builder gone (killed), the lock is free: the unfinished venv goes.
    hs.exec("th1", ["pkill", "-f", "busy0000.lock"], check=False)
    holder.wait(timeout=30)
    deadline = time.monotonic() + 10
    while hs.pids_matching("th1", "busy0000.lock") and time.monotonic() < deadline:
        time.sleep(0.2)
    last = run_driver(["clean", "-i", str(hs.inventory_path)], tmp_path)
    assert last.stdout.startswith("th1: removed 0 job directories, 1 unfinished venvs"), last.stdout


def test_system_site_packages_lets_the_venv_use_what_the_python_has(start_testhosts, wheelhouse, tmp_path):
    """A host whose python already has a package (as a GPU host has its CUDA torch) in its own site."""
    hs = start_testhosts(1)
    site = hs.ssh("th1", "python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'").stdout
    hs.exec("th1", ["sh", "-c", f"echo 'VALUE = 42' > {shlex.quote(site.strip())}/sitemarker.py"])
    script = tmp_path / "uses_both.py"
    script.write_text("import sitemarker, six\nprint(sitemarker.VALUE, six.__version__)\n")
    args = [
        "train",
        str(script),
        "-i",
        str(hs.inventory_path),
        "--packages",
        "six==1.16.0",
        *offline(wheelhouse),
    ]

    shared = run_driver([*args, "--system-site-packages"], tmp_path, timeout=300)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout == "42 1.16.0\n"

    isolated = run_driver(args, tmp_path, timeout=300)  # the default venv is isolated: another venv
    assert isolated.returncode == 1
    assert "No module named 'sitemarker'" in isolated.stdout
    ready = hs.ssh("th1", "ls -d ~/.cache/remote-trainer/venvs/*/.ready | wc -l").stdout.strip()
    assert ready == "2"


def test_an_interrupted_first_provision_does_not_hold_up_the_next(
    start_testhosts, torch_wheelhouse, tmp_path
):
    """Ctrl+C while pip installs a big set (torch): the next provision of that set goes ahead at once."""
    hs = start_testhosts(1)
    args = ["--packages", "torch==2.13.0", "--wheelhouse", str(torch_wheelhouse), "--no-index"]
    proc = subprocess.Popen(
        [DRIVER, "provision", "-i", str(hs.inventory_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=driver_env(tmp_path),
    )
    try:
        deadline = time.monotonic() + 240
        while not hs.pids_matching("th1", r"pip3? install|-m pip install") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hs.pids_matching("th1", r"pip3? install|-m pip install"), "pip never ran"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    again = provision(hs, tmp_path, *args)
    assert again.returncode == 0, again.stderr
    hs.ssh("th1", f"{venv_of(again.stdout, 'th1')}/bin/python -c 'import torch'")


class SlowIndex:
    """A PEP 503 index on loopback serving the test wheelhouse's six, the wheel itself slowly (~3 s)."""

    def __init__(self, wheelhouse) -> None:
        import http.server
        import threading

        wheel = next(wheelhouse.glob("six-*.whl"))
        data = wheel.read_bytes()
        self.served = threading.Event()
        served = self.served

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/simple/six":
                    body = f'<a href="/files/{wheel.name}">{wheel.name}</a>'.encode()
                    self._send(body, "text/html")
                elif self.path == f"/files/{wheel.name}":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    step = len(data) // 6 + 1
                    for i in range(0, len(data), step):
                        self.wfile.write(data[i : i + step])
                        self.wfile.flush()
                        time.sleep(0.5)
                    served.set()
                else:
                    self.send_error(404)

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_pip_s_own_output_shows_live_with_v(wheelhouse, tmp_path):
    """-v relays pip's lines while it runs: "Collecting six" arrives before the wheel is even downloaded."""
    index = SlowIndex(wheelhouse)
    try:
        proc = subprocess.Popen(
            # This machine is the host; a fresh set (its key includes the index's port).
            [DRIVER, "provision", "-v", "--packages", "six==1.16.0", "--index-url", index.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=driver_env(tmp_path),
        )
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:
                seen.append(line)
                if "] pip: Collecting six" in line:
                    assert not index.served.is_set(), "pip's line came only after its download"
                    break
            else:
                raise AssertionError("no live pip line:\n" + "".join(seen))
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "] pip: Successfully installed six-1.16.0" in err
    finally:
        index.close()
