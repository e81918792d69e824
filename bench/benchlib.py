"""What the benchmarks share: the repository's paths, the driver beside this python, timing a command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testhosts"))  # `import hosts` (the test hosts' API)

DRIVER = str(Path(sys.executable).parent / "driver")
NOOP = REPO / "bench" / "noop.py"


def timed(argv: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    """Wall time of one run of argv; a failed run ends the benchmark with its message."""
    start = time.perf_counter()
    res = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({res.returncode}): {res.stderr[-1500:]}")
    return elapsed


def target(name: str, value: float, limit: float, what: str, unit: str = "x") -> bool:
    """Print one target of issue 21's table as measured in this run: `value` against `limit`.

    unit "x": value is a ratio to the floor named in `what`; "s": seconds (a budget); "%": a share of one
    core; "n": a count.
    """
    met = value <= limit
    shown = {"x": f"{value:.2f}x", "s": f"{value:.3f} s", "%": f"{value:.1f} %", "n": f"{value:g}"}[unit]
    bound = {"x": f"{limit:g}x", "s": f"{limit:g} s", "%": f"{limit:g} %", "n": f"{limit:g}"}[unit]
    print(f"TARGET {name}: {shown} ({what}; target <= {bound}) {'met' if met else 'MISSED'}")
    return met


def parallel_ssh(argvs: list[list[str]]) -> float:
    """Wall time of running every argv at once (raw ssh to many hosts in parallel, a user's floor)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for a in argvs]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(proc.args[:3])} failed ({proc.returncode}): {err[-500:]!r}")
    return time.perf_counter() - start
