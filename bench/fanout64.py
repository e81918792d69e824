"""Benchmark: one `driver train` on 64 hosts: the launch against the 1-host launch, and a long run's relay.

Prints, from one run against 64 sshd test hosts (podman containers on this machine, 2 cores shared by the
driver, Ansible and every host):
  - wall time of `driver train noop.py` on 1 host and on all 64 (median of --runs, warm connections), and
    their ratio (issue 21's target: <= 4x);
  - a job that prints a line a second on every host for --seconds: the relay's latency (remote print ->
    line on the driver's stdout) p50/p95/max over every line of every host (target: p95 <= 100 ms), the CPU
    that the driver and Ansible (every process under the driver, ssh included) used while the job ran, as a
    share of one core (the CPU of a no-op launch on 64 hosts taken off; target <= 25 %), and whether every
    host's lines arrived once each and in order.

Usage: python bench/fanout64.py [--hosts N] [--runs R] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import DRIVER, NOOP, REPO, target, timed

# isort: split
import hosts as th  # the test hosts' API, on the path through benchlib

TICKER = REPO / "bench" / "ticker.py"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    before = children_cpu()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return children_cpu() - before


def ticking(
    argv: list[str], env: dict[str, str], hosts: list[str]
) -> tuple[list[float], float, float, list[str]]:
    """Latencies (ms) of every line, the run's wall time and CPU, and what was wrong with the lines."""
    before = children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    latencies: list[float] = []
    seen: dict[str, list[int]] = {h: [] for h in hosts}
    for line in proc.stdout:
        now = time.time()
        if not line.startswith("[") or "] tick " not in line:
            continue
        host, _, rest = line[1:].partition("] tick ")
        stamp, count = rest.split()
        latencies.append((now - float(stamp)) * 1000)
        seen.setdefault(host, []).append(int(count))
    rc = proc.wait()
    wall = time.perf_counter() - start
    cpu = children_cpu() - before
    problems = [f"driver exited {rc}"] if rc else []
    for host, counts in seen.items():
        if not counts:
            problems.append(f"{host}: no line")
        elif counts != list(range(len(counts))):
            problems.append(f"{host}: lines lost, repeated or out of order ({len(counts)} lines)")
    return latencies, wall, cpu, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    th.build_images()
    work = Path(tempfile.mkdtemp(prefix="rt-bench-fanout64-"))
    started = time.perf_counter()
    hs = th.start_hosts(args.hosts, work / "hosts", label=f"rt-bench-f64-{os.getpid()}")
    up = time.perf_counter() - started
    try:
        env = dict(os.environ, REMOTE_TRAINER_STATE_DIR=str(work / "state"))
        inv = str(hs.inventory_path)
        one = [DRIVER, "train", str(NOOP), "-i", inv, "--limit", hs.names[0]]
        every = [DRIVER, "train", str(NOOP), "-i", inv]
        timed(every, env)  # warm every connection
        t1 = statistics.median(timed(one, env) for _ in range(args.runs))
        tn = statistics.median(timed(every, env) for _ in range(args.runs))
        noop_cpu = statistics.median(cpu_of(every, env) for _ in range(args.runs))

        tick = [DRIVER, "train", str(TICKER), "-i", inv, "--", "1.0", str(args.seconds)]
        latencies, wall, cpu, problems = ticking(tick, env, hs.names)
        q = statistics.quantiles(latencies, n=100)
        share = max(cpu - noop_cpu, 0.0) / args.seconds

        print(f"{args.hosts} sshd containers on 127.0.0.1 (up in {up:.0f} s); median of {args.runs} runs")
        print(f"  driver train noop.py, 1 host            {t1:6.2f} s")
        print(f"  driver train noop.py, {args.hosts} hosts           {tn:6.2f} s  (CPU {noop_cpu:.1f} s)")
        print(
            f"  a line a second on every host for {args.seconds:g} s: {len(latencies)} lines, {wall:.1f} s; "
            f"latency p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, max {max(latencies):.0f} ms; "
            f"driver+Ansible CPU {cpu:.1f} s ({share * 100:.1f} % of one core without the launch's)"
        )
        print(f"  lines: {'every line once, in order' if not problems else '; '.join(problems[:5])}")
        n = args.hosts
        target(f"{n}-host launch", tn / t1, 4.0, f"{tn:.2f} s on {n} hosts / {t1:.2f} s on 1 host")
        target(f"{n}-host relay p95", q[94] / 1000, 0.1, "remote print -> driver stdout", unit="s")
        target(f"{n}-host driver CPU while the job runs", share * 100, 25.0, "of one core", unit="%")
        target(f"{n}-host lines lost, repeated or out of order", len(problems), 0, "problems", unit="n")
    finally:
        hs.stop()


if __name__ == "__main__":
    main()
