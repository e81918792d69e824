"""Benchmark: the same no-op job on 1, 4 and 16 hosts (fan-out), and re-staging a large workdir.

Prints, from one run against sshd test hosts (podman containers on this machine, 2 cores shared by the
driver, Ansible and every host):
  - wall time of `driver train noop.py` on 1, 4 and 16 hosts (median of --runs, warm connections), the
    same of `ssh HOST python3 noop.py` to every host at once (new connections: the floor), and the cost
    of each further host of both (issue 21's target: the driver's <= 2x the floor's);
  - staging a workdir of 1 GB in 10,000 files to 1 and to 16 hosts: first time, again unchanged, after one
    file changed, and the same job without --workdir (each a whole `driver train` run of a no-op script;
    target: unchanged <= +0.3 s over no workdir).

Usage: python bench/fanout.py [--runs R] [--skip-resync]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import DRIVER, NOOP, parallel_ssh, target, timed

# isort: split
import hosts as th  # the test hosts' API, on the path through benchlib


def make_workdir(path: Path, files: int, size: int) -> None:
    for i in range(files):
        sub = path / f"d{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    shutil.copy(NOOP, path / "noop.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-resync", action="store_true")
    args = parser.parse_args()

    th.build_images()
    work = Path(tempfile.mkdtemp(prefix="rt-bench-fanout-"))
    hs = th.start_hosts(16, work / "hosts", label=f"rt-bench-fanout-{os.getpid()}")
    try:
        env = dict(os.environ, REMOTE_TRAINER_STATE_DIR=str(work / "state"))
        inv = str(hs.inventory_path)
        for name in hs.names:
            hs.ssh(name, "cat > noop.py < /dev/null")
        results, raw = {}, {}
        for n in (1, 4, 16):
            argv = [DRIVER, "train", str(NOOP), "-i", inv, "--limit", ":".join(hs.names[:n])]
            timed(argv, env)  # warm connections and caches
            results[n] = statistics.median(timed(argv, env) for _ in range(args.runs))
            ssh = [hs.ssh_argv(name, "python3 noop.py") for name in hs.names[:n]]
            raw[n] = statistics.median(parallel_ssh(ssh) for _ in range(max(args.runs, 5)))
        print(f"fan-out, median of {args.runs} (warm); raw ssh: new connections to every host at once:")
        for n, t in results.items():
            print(f"  {n:2d} host(s)  driver train noop.py {t:6.2f} s  raw ssh {raw[n]:6.2f} s")
        print(f"  ratio 16:1  {results[16] / results[1]:.2f}")
        per_host = (results[16] - results[1]) / 15
        raw_per_host = (raw[16] - raw[1]) / 15
        target(
            "fan-out 1 -> 16 hosts, cost of each further host",
            per_host / raw_per_host,
            2.0,
            f"driver {per_host * 1000:.0f} ms / raw ssh in parallel {raw_per_host * 1000:.0f} ms",
        )

        if not args.skip_resync:
            data = work / "workdir"
            start = time.perf_counter()
            make_workdir(data, 10_000, 100_000)
            made = time.perf_counter() - start
            print(f"a --workdir of 1 GB in 10,000 files (made in {made:.1f} s), whole `driver train` runs:")
            for n in (1, 16):
                limit = ["--limit", ":".join(hs.names[:n])]
                argv = [DRIVER, "train", str(data / "noop.py"), "-i", inv, *limit, "--workdir", str(data)]
                first = timed(argv, env)
                unchanged = statistics.median(timed(argv, env) for _ in range(args.runs))
                (data / "d007" / "f03500.bin").write_bytes(os.urandom(100_000))
                touched = timed(argv, env)
                bare = [DRIVER, "train", str(NOOP), "-i", inv, *limit]
                baseline = statistics.median(timed(bare, env) for _ in range(args.runs))
                print(f"  {n:2d} host(s): first (everything sent)  {first:6.2f} s")
                print(f"  {n:2d} host(s): unchanged               {unchanged:6.2f} s (median of {args.runs})")
                print(f"  {n:2d} host(s): one file changed        {touched:6.2f} s")
                print(f"  {n:2d} host(s): same job, no --workdir  {baseline:6.2f} s")
                target(
                    f"re-sync of an unchanged workdir, {n} host(s)",
                    unchanged - baseline,
                    0.3,
                    f"{unchanged:.2f} s with it - {baseline:.2f} s without it",
                    unit="s",
                )
    finally:
        hs.stop()


if __name__ == "__main__":
    main()
