"""Benchmark: the extra launch time of a container job (`driver train --image`) over a plain one.

Prints, from one run, the median wall time of `driver train noop.py` and of the same with --image, on
  - this machine (no inventory: the local connection, rootful podman), and
  - one test host over SSH that runs rootless podman (testhosts/image, target testhost-podman; vfs storage,
    so each container copies the image's file tree: a worst case for the engine's own start),
plus `podman run --rm --init --network=host IMAGE python3 -c pass` on each (the engine's own cost) and
the ratios. The image is sent to the host once before timing (--image-from-local); the timed runs find it.

Usage: python bench/container_launch.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchlib import DRIVER, NOOP, REPO, timed

# isort: split
import hosts as th  # the test hosts' API, on the path through benchlib


def median(argv: list[str], env: dict[str, str], runs: int) -> float:
    timed(argv, env)  # warm-up: connections, caches
    return statistics.median(timed(argv, env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    subprocess.run(["sh", str(REPO / "testhosts" / "build-image.sh")], check=True)
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        env = {**os.environ, "REMOTE_TRAINER_STATE_DIR": str(Path(tmp) / "state")}
        hs = th.start_hosts(1, Path(tmp) / "hosts", image=th.IMAGE_PODMAN, extra_run_args=th.PODMAN_RUN_ARGS)
        try:
            inv = ["-i", str(hs.inventory_path)]
            image = ["--image", th.IMAGE_JOB]
            timed([DRIVER, "train", str(NOOP), *inv, *image, "--image-from-local"], env)
            rows = []
            remote = ["ssh", "-F", str(hs.ssh_config_path), "th1", "podman"]
            for where, hosts, engine in (
                ("this machine", [], ["podman"]),
                ("ssh host (rootless podman, vfs)", inv, remote),
            ):
                plain = median([DRIVER, "train", str(NOOP), *hosts], env, args.runs)
                boxed = median([DRIVER, "train", str(NOOP), *hosts, *image], env, args.runs)
                run = [*engine, "run", "--rm", "--init", "--network=host", th.IMAGE_JOB]
                bare = median([*run, "python3", "-c", "pass"], env, args.runs)
                rows.append((where, plain, boxed, bare))
        finally:
            hs.stop()
    print(f"median of {args.runs} runs each (s)")
    print(f"{'host':34} {'plain':>7} {'--image':>8} {'extra':>7} {'ratio':>6} {'podman run':>11}")
    for where, plain, boxed, bare in rows:
        print(f"{where:34} {plain:7.2f} {boxed:8.2f} {boxed - plain:7.2f} {boxed / plain:6.2f} {bare:11.2f}")


if __name__ == "__main__":
    main()
