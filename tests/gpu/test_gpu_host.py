"""On a machine with an NVIDIA GPU: the driver runs real CUDA training on this machine (the embedded
default, local connection) and stopping a job gives the GPU back.

Deselected unless asked for: `make test-gpu` (pytest -m gpu tests/gpu). The python with a CUDA build of
torch is REMOTE_TRAINER_GPU_PYTHON, else the first `python3` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from driverproc import REPO, job_output, read_until, run_driver, start_driver

pytestmark = pytest.mark.gpu

EXAMPLE = str(REPO / "examples" / "gpu_train.py")


@pytest.fixture(scope="module")
def gpu_python() -> str:
    python = os.environ.get("REMOTE_TRAINER_GPU_PYTHON") or shutil.which("python3") or ""
    probe = subprocess.run(
        [python, "-c", "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or int(probe.stdout.strip() or 0) < 1:
        pytest.fail(f"{python!r} has no CUDA build of torch seeing a GPU: set REMOTE_TRAINER_GPU_PYTHON")
    return python


def gpu_count(python: str) -> int:
    out = subprocess.run(
        [python, "-c", "import torch; print(torch.cuda.device_count())"], capture_output=True
    )
    return int(out.stdout)


def gpu_memory_used_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(int(v) for v in out.stdout.split())


def job_processes() -> list[str]:
    out = subprocess.run(["pgrep", "-af", "gpu_train.py"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def wait_for(predicate, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.25)
    return time.monotonic() - start


def test_trains_on_the_gpu_and_the_model_comes_back(gpu_python, tmp_path):
    out = tmp_path / "out"
    res = run_driver(
        ["train", EXAMPLE, "--python", gpu_python, "--output-dir", str(out), "--", "--steps", "300"],
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert " on NVIDIA " in res.stdout and "trained 300 steps" in res.stdout, res.stdout
    metrics = json.loads((job_output(out, "localhost") / "metrics.json").read_text())
    assert metrics["device"].startswith("NVIDIA") and metrics["last_loss"] < metrics["first_loss"] / 10
    check = subprocess.run(
        [
            gpu_python,
            "-c",
            "import sys, torch; print(len(torch.load(sys.argv[1])))",
            job_output(out, "localhost") / "model.pt",
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and int(check.stdout) == 4, check.stderr  # 2 layers: weight + bias each


@pytest.mark.parametrize("nproc", ["count", "gpu"])
def test_torchrun_runs_one_nccl_process_per_gpu(nproc, gpu_python, tmp_path):
    n = gpu_count(gpu_python)
    res = run_driver(
        [
            "train",
            EXAMPLE,
            "--python",
            gpu_python,
            "--launcher",
            "torchrun",
            "--nproc-per-node",
            str(n) if nproc == "count" else nproc,
            "--",
            "--steps",
            "100",
        ],
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert sum(f"all_reduce over {n} ranks ok" in line for line in res.stdout.splitlines()) == n, res.stdout


def test_a_cuda_error_is_the_exit_code(gpu_python, tmp_path):
    script = tmp_path / "oom.py"
    script.write_text("import torch\ntorch.empty(1 << 50, device='cuda')\n")  # a petabyte
    res = run_driver(["train", str(script), "--python", gpu_python], tmp_path, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "OutOfMemoryError" in res.stdout, res.stdout


@pytest.mark.parametrize("how", ["cancel", "timeout", "sigint"])
def test_stopping_a_job_gives_the_gpu_back(how, gpu_python, tmp_path):
    idle = gpu_memory_used_mib()
    args = [
        "train",
        EXAMPLE,
        "--python",
        gpu_python,
        "--grace",
        "10s",
        "--",
        "--steps",
        "20",
        "--hold",
        "600",
    ]
    if how == "cancel":
        res = run_driver([*args[:1], "-d", *args[1:]], tmp_path)
        assert res.returncode == 0, res.stderr
        job = res.stdout.strip()
        wait_for(lambda: "holding" in run_driver(["logs", job], tmp_path).stdout, 120)
        busy = gpu_memory_used_mib()
        res = run_driver(["cancel", job], tmp_path)
        assert res.returncode == 0, res.stderr
    elif how == "timeout":
        started = time.monotonic()
        proc = start_driver([*args[:1], "--timeout", "40s", *args[1:]], tmp_path)
        read_until(proc, "holding", timeout=120)
        busy = gpu_memory_used_mib()
        proc.communicate(timeout=120)
        assert proc.returncode == 124
        assert time.monotonic() - started < 40 + 15
    else:
        proc = start_driver(args, tmp_path)
        read_until(proc, "holding", timeout=120)
        busy = gpu_memory_used_mib()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
    assert busy > idle + 256, f"the job did not hold GPU memory ({idle} -> {busy} MiB)"
    assert job_processes() == [], "a process of the job is left"
    freed = wait_for(lambda: gpu_memory_used_mib() <= idle + 64, 10)
    print(
        f"{how}: GPU memory {busy} MiB while running, back to {gpu_memory_used_mib()} MiB {freed:.2f} s after"
    )
