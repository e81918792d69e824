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
