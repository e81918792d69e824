"""Benchmark: the Slurm executor against its floor and a peer, on the Slurm test cluster (testhosts/slurm.py).

Prints, from one run (medians of --runs):
  - sbatch -> first output line: `driver train` of a script that prints one line (warm, prepared login
    node), against the floor: `ssh login sbatch --parsable -o FILE` and then `ssh login tail -F -s 0.1 FILE`
    until the line is seen;
  - cancel -> nothing left: Ctrl+C to the driver until the queue is empty and no process of the job is left
    on any node, against `ssh login scancel ID` until the queue is empty (a script that traps nothing);
  - launch overhead against submitit 1.5 run on the login node (the PyPI package, wheels fetched here):
    submit a no-op and read its result (`job.result()`), against `driver train noop.py` reading its code.
Each as a ratio. The nodes are podman containers on this machine, so all clocks are one.

Usage: python bench/slurm.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import select
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import DRIVER, NOOP

# isort: split
import slurm as slurm_hosts  # testhosts/slurm.py, on the path through benchlib

BIN = Path(sys.executable).parent
FIRST = "import time\nprint('first', flush=True)\ntime.sleep(2)\n"
SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(600)\n"
SUBMITIT = """\
import time
import submitit

def noop():
    return 0

ex = submitit.AutoExecutor(folder="subm")
ex.update_parameters(timeout_min=5)
t0 = time.perf_counter()
job = ex.submit(noop)
assert job.result() == 0
print(f"{time.perf_counter() - t0:.4f}")
"""


def first_line(
    argv: list[str], env: dict[str, str], needle: str, start: float | None = None
) -> tuple[float, subprocess.Popen]:
    """Seconds from start (default: argv's start) until a stdout line contains needle (argv goes on)."""
    start = time.perf_counter() if start is None else start
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    buf = b""
    while needle.encode() not in buf:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
        if not chunk:
            raise SystemExit(f"{' '.join(argv[:3])}: no {needle!r} (exit {proc.poll()})")
        buf += chunk
    return time.perf_counter() - start, proc


def floor_first_line(sc: slurm_hosts.SlurmCluster, env: dict[str, str], run: int) -> float:
    hs = sc.hosts
    start = time.perf_counter()
    job = hs.ssh(
        "login1", f"sbatch --parsable -o first-{run}.out --wrap 'python3 -u first.py'"
    ).stdout.strip()
    tail = hs.ssh_argv("login1", f"tail -F -s 0.1 first-{run}.out 2>/dev/null")
    took, proc = first_line(tail, env, "first", start)  # from the sbatch's ssh
    proc.kill()
    proc.wait()
    hs.ssh("login1", f"scancel {job}", check=False)
    sc.wait_idle()
    return took


def driver_first_line(sc: slurm_hosts.SlurmCluster, inv: str, script: Path, env: dict[str, str]) -> float:
    took, proc = first_line([DRIVER, "train", str(script), "-i", inv], env, "first")
    proc.wait(timeout=120)
    sc.wait_idle()
    return took


def driver_cancel(sc: slurm_hosts.SlurmCluster, inv: str, script: Path, env: dict[str, str]) -> float:
    _, proc = first_line([DRIVER, "train", str(script), "-i", inv], env, "up")
    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    while sc.active() or sc.processes("jobctl.py run"):
        time.sleep(0.02)
    took = time.perf_counter() - start
    proc.wait(timeout=60)
    return took


def floor_cancel(sc: slurm_hosts.SlurmCluster, env: dict[str, str]) -> float:
    hs = sc.hosts
    job = hs.ssh("login1", "sbatch --parsable -o /dev/null --wrap 'sleep 600'").stdout.strip()
    while not sc.processes("sleep 600"):
        time.sleep(0.05)
    start = time.perf_counter()
    hs.ssh("login1", f"scancel {job}")
    while sc.active() or sc.processes("sleep 600"):
        time.sleep(0.02)
    return time.perf_counter() - start


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rt-bench-slurm-"))
    wheels = work / "wheels"
    subprocess.run(
        [str(BIN / "pip"), "download", "-q", "-d", str(wheels), "submitit==1.5.4"], check=True, timeout=300
    )
    sc = slurm_hosts.start_cluster(work / "slurm", label=f"rt-bench-slurm-{os.getpid()}")
    try:
        env = dict(os.environ, REMOTE_TRAINER_STATE_DIR=str(work / "state"))
        hs = sc.hosts
        home = work / "slurm" / "home"
        (home / "first.py").write_text(FIRST)
        (home / "submitit_noop.py").write_text(SUBMITIT)
        subprocess.run(["cp", "-r", str(wheels), str(home / "wheels")], check=True)
        subprocess.run(["chown", "-R", "1000:1000", str(home)], check=True)
        hs.ssh(
            "login1",
            "python3 -m venv subenv && subenv/bin/pip install -q --no-index --find-links wheels submitit",
        )
        inv_path = work / "hosts.ini"
        h = hs.hosts["login1"]
        inv_path.write_text(
            f"hpc ansible_host=127.0.0.1 ansible_port={h.port} ansible_user=trainer "
            f"ansible_ssh_private_key_file={hs.key_path} training_job_executor=slurm "
            f"ansible_ssh_common_args='-o UserKnownHostsFile={shlex.quote(str(hs.known_hosts_path))}'\n"
        )
        inv = str(inv_path)
        first = work / "first.py"
        first.write_text(FIRST)
        sleeper = work / "sleeper.py"
        sleeper.write_text(SLEEPER)
        subprocess.run(
            [DRIVER, "train", str(NOOP), "-i", inv], env=env, check=True, capture_output=True
        )  # warm

        floor_first = median([floor_first_line(sc, env, i) for i in range(args.runs)])
        drv_first = median([driver_first_line(sc, inv, first, env) for _ in range(args.runs)])
        floor_stop = median([floor_cancel(sc, env) for _ in range(args.runs)])
        drv_stop = median([driver_cancel(sc, inv, sleeper, env) for _ in range(args.runs)])

        def submitit_once() -> float:
            start = time.perf_counter()
            hs.ssh("login1", "subenv/bin/python submitit_noop.py 2>/dev/null")
            return time.perf_counter() - start

        def driver_once() -> float:
            start = time.perf_counter()
            subprocess.run([DRIVER, "train", str(NOOP), "-i", inv], env=env, check=True, capture_output=True)
            return time.perf_counter() - start

        peer = median([submitit_once() for _ in range(args.runs)])
        drv = median([driver_once() for _ in range(args.runs)])
    finally:
        sc.stop()

    print(f"Slurm executor, medians of {args.runs} runs ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)")
    print(f"{'measure':<52} {'driver':>8} {'against':>8} {'ratio':>6}")
    rows = [
        ("sbatch -> first line (floor: ssh sbatch + tail -F)", drv_first, floor_first),
        ("cancel -> nothing left (floor: ssh scancel)", drv_stop, floor_stop),
        ("no-op, submit to result (peer: submitit 1.5.4)", drv, peer),
    ]
    for name, mine, other in rows:
        print(f"{name:<52} {mine:>7.2f}s {other:>7.2f}s {mine / other:>5.2f}x")


if __name__ == "__main__":
    main()
