"""What another user of a shared host (an HPC login node, a lab server) sees of a provisioning and a run, as
an attacker would look: a second Unix user `mallory` on the sshd test host polls every process's command
line and environment while `driver train` provisions a set from an index URL with credentials and runs a
job, then lists and reads the user's ~/.remote-trainer and venv cache. On this machine the same tokens are
looked for in every local process's command line (the ssh commands Ansible and the plugins run)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from driverproc import run_driver

IDX_TOKEN = "IDXTOKEN-7f3a9c"  # the password of the package index (inventory's remote_host_index_url)
ENV_TOKEN = "ENVTOKEN-51d2e8"  # a value of the inventory's remote_host_environment
JOB_TOKEN = "JOBTOKEN-c04b77"  # a value of `train -e NAME` (from the driver's environment)
TOKENS = (IDX_TOKEN, ENV_TOKEN, JOB_TOKEN)
PORT = 8707
HOME = "/home/trainer"

# A PEP 503 index of one package (six) on the host's loopback, the wheel sent slowly: pip runs for seconds.
INDEX = r"""
import http.server, sys, time
name = sys.argv[1]
data = open("/srv/idx/" + name, "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.rstrip("/") == "/simple/six":
            body = ('<a href="/files/%s">%s</a>' % (name, name)).encode()
            self.send_response(200); self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        elif self.path == "/files/" + name:
            self.send_response(200); self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data))); self.end_headers()
            step = len(data) // 4 + 1
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step]); self.wfile.flush(); time.sleep(0.5)
        else:
            self.send_error(404)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
"""

# mallory's watcher: every process's argv and environment, again and again until /tmp/stop-watch appears;
# prints each (pid, file, text) in which a token shows (the tokens come in its environment, not its argv).
WATCH = r"""
import json, os
tokens = os.environ["TOKENS"].split(",")
me, seen, rounds = os.getpid(), set(), 0
while not os.path.exists("/tmp/stop-watch"):
    rounds += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        for what in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (pid, what), "rb") as f:
                    text = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if any(t in text for t in tokens) and (pid, what, text) not in seen:
                seen.add((pid, what, text))
                print(json.dumps([pid, what, text[:300]]), flush=True)
print(json.dumps(["rounds", rounds]), flush=True)
"""


def local_watch(stop: threading.Event, found: list[str]) -> None:
    """This machine's own processes (not the test hosts'): a token in any command line (ssh's, sh's)."""
    me, ns = os.getpid(), os.readlink("/proc/self/ns/pid")
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != ns:
                    continue  # a process of a container (a test host's, seen by mallory there)
                text = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                )
            except OSError:
                continue
            if any(t in text for t in TOKENS):
                found.append(text[:300])
        time.sleep(0.01)


def as_mallory(hs, command: str) -> subprocess.CompletedProcess:
    return hs.exec("th1", ["sh", "-c", command], user="mallory", check=False)


def test_another_user_sees_no_secret_and_reads_nothing(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    # A shared host as many are: a second user, homes that others may enter (0755).
    hs.exec("th1", ["useradd", "-m", "mallory"])
    hs.exec("th1", ["chmod", "0755", HOME])
    wheel = next(wheelhouse.glob("six-*.whl"))
    hs.exec("th1", ["mkdir", "-p", "/srv/idx"])
    subprocess.run(["podman", "cp", str(wheel), f"{hs.container('th1')}:/srv/idx/{wheel.name}"], check=True)
    subprocess.run(
        ["podman", "exec", "-d", hs.container("th1"), "python3", "-c", INDEX, wheel.name, str(PORT)],
        check=True,
    )

    inventory = tmp_path / "inventory.ini"
    env = json.dumps({"ENV_SECRET": ENV_TOKEN})
    index = f"http://user:{IDX_TOKEN}@127.0.0.1:{PORT}/simple"
    inventory.write_text(
        hs.inventory_path.read_text().replace(
            "ansible_user=trainer",
            f"ansible_user=trainer remote_host_index_url={index} remote_host_environment='{env}'",
        )
    )
    workdir = tmp_path / "wd"
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "private.txt").write_text("the user's data\n")
    (workdir / "run.sh").write_text("#!/bin/sh\necho run\n")
    (workdir / "run.sh").chmod(0o755)
    os.chmod(workdir / "data" / "private.txt", 0o644)
    script = workdir / "job.py"
    script.write_text(
        "import os, six, time\n"
        "time.sleep(3)\n"
        "print(six.__version__, os.environ['JOB_SECRET'] == 'JOBTOKEN-c04b77',"
        " os.environ['ENV_SECRET'] == 'ENVTOKEN-51d2e8', os.access('run.sh', os.X_OK))\n"
    )

    watcher = subprocess.Popen(
        ["podman", "exec", "--user", "mallory", "-e", "TOKENS", hs.container("th1"), "python3", "-c", WATCH],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TOKENS": ",".join(TOKENS)},  # by name: no token in this command line either
    )
    stop, local_found = threading.Event(), []
    local = threading.Thread(target=local_watch, args=(stop, local_found), daemon=True)
    local.start()
    try:
        argv = ["train", str(script), "-i", str(inventory), "--workdir", str(workdir)]
        res = run_driver(
            [*argv, "--packages", "six==1.16.0", "-e", "JOB_SECRET"],
            tmp_path / "state",
            timeout=300,
            extra_env={"JOB_SECRET": JOB_TOKEN},
        )
    finally:
        stop.set()
        hs.exec("th1", ["touch", "/tmp/stop-watch"])
        out, _ = watcher.communicate(timeout=60)
        local.join(timeout=10)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "1.16.0 True True True\n"
    seen = [json.loads(line) for line in out.splitlines()]
    rounds = [s for s in seen if s[0] == "rounds"]
    assert rounds and rounds[0][1] > 10, out  # the watcher did look, many times
    problems = [f"mallory read {s[1]} of pid {s[0]}: {s[2]}" for s in seen if s[0] != "rounds"]
    problems += [f"a command line on this machine: {text}" for text in dict.fromkeys(local_found)]

    # Nothing the project wrote is open to others: no group or other bits on any file or directory.
    ours = [f"{HOME}/.remote-trainer", f"{HOME}/.cache/remote-trainer"]
    opened = hs.exec("th1", ["find", *ours, "!", "-type", "l", "-perm", "/go=rwx", "-printf", "%m %p\\n"])
    problems += [f"open to others: {line}" for line in opened.stdout.splitlines()[:20]]
    assert "job.py" in hs.exec("th1", ["find", f"{HOME}/.remote-trainer", "-name", "job.py"]).stdout
    # ... and the owner keeps the executable bit of the user's own file.
    mode = hs.exec("th1", ["sh", "-c", f"stat -c %a {HOME}/.remote-trainer/stage/*/run.sh"]).stdout.split()
    if mode != ["700"]:
        problems.append(f"run.sh's mode in the mirror: {mode}")
    for path in [*ours, f"{HOME}/.remote-trainer/jobs", f"{HOME}/.remote-trainer/stage"]:
        listed = as_mallory(hs, f"ls {path}")
        if listed.returncode == 0:
            problems.append(f"mallory lists {path}: {listed.stdout.split()}")
    read = as_mallory(hs, f"cat {HOME}/.remote-trainer/stage/*/data/private.txt")
    if "the user's data" in read.stdout:
        problems.append("mallory reads the staged data/private.txt")
    assert problems == [], "\n".join(problems)
