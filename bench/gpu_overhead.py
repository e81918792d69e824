"""Benchmark, on a machine with an NVIDIA GPU: what the driver adds to a real CUDA training run here.

Prints the median wall time (of --runs) of examples/gpu_train.py
  - run directly: `PYTHON examples/gpu_train.py`,
  - through `driver train --python PYTHON` (this machine, local connection; the provisioning probe
    included, outputs copied back),
  - the same with --no-provision,
and, from one run of each stop, how long the GPU memory takes to go back to idle after `driver cancel`
returns. PYTHON is REMOTE_TRAINER_GPU_PYTHON, else `python3` (it needs a CUDA build of torch).

Usage: python bench/gpu_overhead.py [--runs N] [--steps N]   (tests/gpu/run-offline.sh installs the driver)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from benchlib import DRIVER, REPO, timed

EXAMPLE = str(REPO / "examples" / "gpu_train.py")


def gpu_used_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(int(v) for v in out.stdout.split())


def release_after_cancel(env: dict[str, str], python: str, cwd: str) -> tuple[float, float]:
    """Seconds `driver cancel` took, and seconds after it until the GPU memory was idle again."""
    idle = gpu_used_mib()
    job = subprocess.run(
        [DRIVER, "train", "-d", EXAMPLE, "--python", python, "--", "--steps", "20", "--hold", "600"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 120
    while (
        "holding"
        not in subprocess.run([DRIVER, "logs", job], env=env, cwd=cwd, capture_output=True, text=True).stdout
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the job never reached its hold")
        time.sleep(0.5)
    start = time.perf_counter()
    subprocess.run([DRIVER, "cancel", job], env=env, cwd=cwd, check=True, capture_output=True)
    cancel = time.perf_counter() - start
    start = time.perf_counter()
    while gpu_used_mib() > idle + 64:
        time.sleep(0.05)
    return cancel, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    opts = parser.parse_args()
    python = os.environ.get("REMOTE_TRAINER_GPU_PYTHON") or shutil.which("python3") or "python3"
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "REMOTE_TRAINER_STATE_DIR": state}
        args = ["--", "--steps", str(opts.steps)]
        cases = {
            "python gpu_train.py (direct)": [
                python,
                EXAMPLE,
                "--steps",
                str(opts.steps),
                "--output",
                f"{state}/o",
            ],
            "driver train": [DRIVER, "train", EXAMPLE, "--python", python, *args],
            "driver train --no-provision": [
                DRIVER,
                "train",
                EXAMPLE,
                "--python",
                python,
                "--no-provision",
                *args,
            ],
        }
        timed(cases["python gpu_train.py (direct)"], env, state)  # warm the page cache and CUDA's JIT cache
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(opts.runs):  # round robin, so that a drift of the GPU's clocks hits every case alike
            for name, argv in cases.items():
                samples[name].append(timed(argv, env, state))
        medians = {}
        for name, got in samples.items():
            medians[name] = statistics.median(got)
            print(f"{name:32s} median {medians[name]:6.2f} s  (min {min(got):.2f}, max {max(got):.2f})")
        direct = medians["python gpu_train.py (direct)"]
        for name in ("driver train", "driver train --no-provision"):
            print(f"{name:32s} adds {medians[name] - direct:5.2f} s to the direct run")
        cancel, freed = release_after_cancel(env, python, state)
        print(f"driver cancel of a job holding the GPU: {cancel:.2f} s; GPU memory idle {freed:.2f} s after")


if __name__ == "__main__":
    main()
