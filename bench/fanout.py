"""Benchmark: the same no-op job on 1, 4 and 16 hosts (fan-out), and re-staging a large workdir.

Prints, from one run against sshd test hosts (podman containers on this machine, 2 cores shared by the
driver, Ansible and every host):
  - wall time of `driver train noop.py` on 1, 4 and 16 hosts (median of --runs, warm connections) and
    the 16:1 ratio;
  - staging a workdir of 1 GB in 10,000 files to one host: first time, again unchanged, and after one
    file changed (each a whole `driver train --workdir` run of a no-op script).

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

from benchlib import DRIVER, NOOP, timed

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
        results = {}
        for n in (1, 4, 16):
            argv = [DRIVER, "train", str(NOOP), "-i", inv, "--limit", ":".join(hs.names[:n])]
            timed(argv, env)  # warm connections and caches
            results[n] = statistics.median(timed(argv, env) for _ in range(args.runs))
        print(f"fan-out, `driver train noop.py`, median of {args.runs} (warm):")
        for n, t in results.items():
            print(f"  {n:2d} host(s)  {t:6.2f} s")
        print(f"  ratio 16:1  {results[16] / results[1]:.2f}")

        if not args.skip_resync:
            data = work / "workdir"
            start = time.perf_counter()
            make_workdir(data, 10_000, 100_000)
            made = time.perf_counter() - start
            argv = [
                DRIVER,
                "train",
                str(data / "noop.py"),
                "-i",
                inv,
                "--limit",
                "th1",
                "--workdir",
                str(data),
            ]
            first = timed(argv, env)
            unchanged = statistics.median(timed(argv, env) for _ in range(args.runs))
            (data / "d007" / "f03500.bin").write_bytes(os.urandom(100_000))
            touched = timed(argv, env)
            baseline = timed([DRIVER, "train", str(NOOP), "-i", inv, "--limit", "th1"], env)
            print(
                f"staging a 1 GB workdir of 10,000 files (made in {made:.1f} s), whole `driver train` runs:"
            )
            print(f"  first (everything sent)     {first:6.2f} s")
            print(f"  unchanged                   {unchanged:6.2f} s  (median of {args.runs})")
            print(f"  one file changed            {touched:6.2f} s")
            print(f"  same job without --workdir  {baseline:6.2f} s")
    finally:
        hs.stop()


if __name__ == "__main__":
    main()
