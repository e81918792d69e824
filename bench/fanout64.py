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

from benchlib import DRIVER, NOOP, REPO, parallel_ssh, target, timed

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
) -> tuple[list[tuple[float, float]], float, float, list[str], float]:
    """(remote stamp, latency in ms) of every line, the run's wall time and CPU, what was wrong with the
    lines, and the remote stamp of the last host's first line (when the last host started)."""
    before = children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    latencies: list[tuple[float, float]] = []  # (remote stamp, ms)
    seen: dict[str, list[int]] = {h: [] for h in hosts}
    first_stamps: dict[str, list[float]] = {h: [] for h in hosts}
    for line in proc.stdout:
        now = time.time()
        if not line.startswith("[") or "] tick " not in line:
            continue
        host, _, rest = line[1:].partition("] tick ")
        stamp, count = rest.split()
        latencies.append((float(stamp), (now - float(stamp)) * 1000))
        seen.setdefault(host, []).append(int(count))
        if not first_stamps.setdefault(host, []):
            first_stamps[host].append(float(stamp))
    rc = proc.wait()
    firsts = [stamps[0] for stamps in first_stamps.values() if stamps]
    wall = time.perf_counter() - start
    cpu = children_cpu() - before
    problems = [f"driver exited {rc}"] if rc else []
    for host, counts in seen.items():
        if not counts:
            problems.append(f"{host}: no line")
        elif counts != list(range(len(counts))):
            problems.append(f"{host}: lines lost, repeated or out of order ({len(counts)} lines)")
    return latencies, wall, cpu, problems, max(firsts) if firsts else 0.0


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
        for name in hs.names:
            hs.ssh(name, "cat > noop.py < /dev/null")
        raw = [hs.ssh_argv(name, "python3 noop.py") for name in hs.names]
        raw1 = statistics.median(parallel_ssh(raw[:1]) for _ in range(max(args.runs, 5)))
        rawn = statistics.median(parallel_ssh(raw) for _ in range(args.runs))
        noop_cpu = statistics.median(cpu_of(every, env) for _ in range(args.runs))

        tick = [DRIVER, "train", str(TICKER), "-i", inv, "--", "1.0", str(args.seconds)]
        stamped, wall, cpu, problems, last_start = ticking(tick, env, hs.names)
        latencies = [ms for _, ms in stamped]
        q = statistics.quantiles(latencies, n=100)
        # Once every host runs: the lines printed after the last host's first one (its launch is over).
        steady = [ms for stamp, ms in stamped if stamp > last_start]
        qs = statistics.quantiles(steady, n=100) if len(steady) > 100 else q
        share = max(cpu - noop_cpu, 0.0) / args.seconds

        n = args.hosts
        print(f"{n} sshd containers on 127.0.0.1 (up in {up:.0f} s); median of {args.runs} runs")
        print(f"  driver train noop.py, 1 host             {t1:6.2f} s   raw ssh {raw1:6.2f} s")
        print(
            f"  driver train noop.py, {n} hosts           {tn:6.2f} s   raw ssh {rawn:6.2f} s "
            f"(driver CPU {noop_cpu:.1f} s)"
        )
        print(
            f"  a line a second on every host for {args.seconds:g} s: {len(latencies)} lines, {wall:.1f} s; "
            f"latency p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, max {max(latencies):.0f} ms; once every host "
            f"runs ({len(steady)} lines): p50 {qs[49]:.0f} ms, p95 {qs[94]:.0f} ms; "
            f"driver+Ansible CPU {cpu:.1f} s ({share * 100:.1f} % of one core without the launch's)"
        )
        print(f"  lines: {'every line once, in order' if not problems else '; '.join(problems[:5])}")
        target(
            f"{n}-host launch",
            tn / t1,
            4.0,
            f"{tn:.2f} s on {n} hosts / {t1:.2f} s on 1 host; raw ssh {rawn / raw1:.1f}x: "
            f"{rawn:.2f} s / {raw1:.2f} s",
        )
        target(
            f"{n}-host relay p95, every line", q[94] / 1000, 0.1, "remote print -> driver stdout", unit="s"
        )
        target(f"{n}-host relay p95, once every host runs", qs[94] / 1000, 0.1, "the same", unit="s")
        target(f"{n}-host driver CPU while the job runs", share * 100, 25.0, "of one core", unit="%")
        target(f"{n}-host lines lost, repeated or out of order", len(problems), 0, "problems", unit="n")
    finally:
        hs.stop()


if __name__ == "__main__":
    main()
