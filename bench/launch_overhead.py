"""Benchmark: launch overhead of `driver train` and the live relay's latency, against one sshd test host.

Prints, from one run, the median wall time of
  - `ssh HOST python3 noop.py` (new connection each time, as a user would type it),
  - a bare one-task ansible-playbook running `python3 noop.py` on the same host (warm connection),
  - `driver train noop.py` on the same host (warm connection), and with --detach (returns once started),
and the relay latency p50/p95 (remote print -> line on the driver's stdout) for a ticker script, and the
time to relay a burst of lines. The host is a podman container on this machine, so both clocks are one.

Usage: python bench/launch_overhead.py [--runs N] [--keep-hosts]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import DRIVER, NOOP, REPO, target, timed

# isort: split
import hosts as th  # the test hosts' API, on the path through benchlib

BIN = Path(sys.executable).parent
TICKER = REPO / "bench" / "ticker.py"


def median_of(runs: int, fn) -> tuple[float, float, float]:
    samples = [fn() for _ in range(runs)]
    return statistics.median(samples), min(samples), max(samples)


def relay_latency(
    hs: th.HostSet, env: dict[str, str], period: float, duration: float
) -> tuple[list[float], float]:
    """Latencies in ms, and the CPU share of one core that driver + Ansible used meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [DRIVER, "train", str(TICKER), "-i", str(hs.inventory_path), "--", str(period), str(duration)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    latencies = []
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.time()
        if line.startswith("tick "):
            latencies.append((now - float(line.split()[1])) * 1000)
    proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return latencies, cpu / wall


def idle_cpu(hs: th.HostSet, env: dict[str, str], seconds: float, noop_cpu: float) -> float:
    """CPU share of one core that driver + Ansible use while a silent job runs (launch cost removed)."""
    script = Path(tempfile.mkdtemp()) / "sleeper.py"
    script.write_text(f"import time\ntime.sleep({seconds})\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([DRIVER, "train", str(script), "-i", str(hs.inventory_path)], env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (cpu - noop_cpu) / seconds


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def burst(hs: th.HostSet, env: dict[str, str], lines: int) -> tuple[float, float]:
    script = Path(tempfile.mkdtemp()) / "burst.py"
    script.write_text(
        f"import sys\nw = sys.stdout.write\nfor i in range({lines}):\n    w(f'line {{i}}\\n')\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(
        [DRIVER, "train", str(script), "-i", str(hs.inventory_path)], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    got = res.stdout.splitlines()
    if got != [f"line {i}" for i in range(lines)]:
        raise SystemExit(f"burst: {len(got)} of {lines} lines, or out of order")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    th.build_images()
    work = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    hs = th.start_hosts(1, work / "hosts", label=f"rt-bench-{os.getpid()}")
    try:
        env = dict(os.environ, REMOTE_TRAINER_STATE_DIR=str(work / "state"))
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        host = hs.names[0]
        hs.ssh(host, "cat > noop.py < /dev/null")

        ssh_noop = median_of(args.runs, lambda: timed(hs.ssh_argv(host, "python3 noop.py"), env))

        playbook = work / "one_task.yml"
        playbook.write_text(
            "- name: One task\n  hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - name: Run the no-op script\n      ansible.builtin.command: python3 noop.py\n"
            "      changed_when: false\n"
        )
        pb_env = dict(
            env,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"),
        )
        (work / "cp").mkdir()
        pb_argv = [str(BIN / "ansible-playbook"), "-i", str(hs.inventory_path), str(playbook)]
        timed(pb_argv, pb_env)  # warm the connection
        playbook_noop = median_of(args.runs, lambda: timed(pb_argv, pb_env))

        drv_argv = [DRIVER, "train", str(NOOP), "-i", str(hs.inventory_path)]
        timed(drv_argv, env)  # warm the connection
        driver_noop = median_of(args.runs, lambda: timed(drv_argv, env))

        detached = median_of(args.runs, lambda: timed([*drv_argv, "--detach"], env))

        drv_bare = [*drv_argv, "--no-provision"]
        bare_noop = median_of(args.runs, lambda: timed(drv_bare, env))
        noop_cpu = statistics.median(cpu_of(drv_argv, env) for _ in range(3))
        idle = idle_cpu(hs, env, 20, noop_cpu)

        lat, cpu_share = relay_latency(hs, env, period=0.137, duration=10)
        q = statistics.quantiles(lat, n=100)
        wall, cpu = burst(hs, env, 100_000)

        print(f"host: 1 sshd container on 127.0.0.1; {args.runs} runs each, median (min-max) seconds")
        for name, (med, lo, hi) in [
            ("ssh host python3 noop.py (new connection)", ssh_noop),
            ("ansible-playbook, one command task (warm)", playbook_noop),
            ("driver train noop.py (warm)", driver_noop),
            ("driver train --no-provision noop.py (warm)", bare_noop),
            ("driver train --detach noop.py (warm)", detached),
        ]:
            print(f"  {name:45s} {med:6.3f}  ({lo:.3f}-{hi:.3f})")
        print(
            f"  driver overhead vs ssh: x{driver_noop[0] / ssh_noop[0]:.1f}; "
            f"vs bare ansible-playbook: +{driver_noop[0] - playbook_noop[0]:.3f} s"
        )
        print(
            f"relay latency, remote print -> driver stdout, {len(lat)} lines every 0.137 s: "
            f"p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, max {max(lat):.0f} ms; "
            f"driver+Ansible CPU {cpu_share * 100:.0f}% of one core"
        )
        print(f"silent 20 s job: driver+Ansible CPU {idle * 100:.1f}% of one core (launch excluded)")
        print(f"burst of 100,000 lines: {wall:.2f} s wall (incl. launch), {cpu:.2f} s CPU of driver+ansible")
        target(
            "launch, 1 warm prepared host",
            driver_noop[0] / playbook_noop[0],
            1.3,
            f"driver train {driver_noop[0]:.3f} s / bare one-task ansible-playbook {playbook_noop[0]:.3f} s",
        )
        target(
            "driver train --detach returns",
            detached[0],
            1.0,
            f"{detached[0] / playbook_noop[0]:.2f}x a bare one-task ansible-playbook; Ray Jobs' detached "
            "start took 0.98 s here",
            unit="s",
        )
    finally:
        hs.stop()


if __name__ == "__main__":
    main()
