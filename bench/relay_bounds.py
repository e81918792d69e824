"""bench/relay_bounds.py [MIB ...]: the driver's relay on output without a newline (issue 28).

Feeds MIB MiB (default 16 32 64) to driver.execution.relay.Relay the way the plugin relays a job's log
(256 KiB a batch), once without any newline and once as 100-byte lines, and prints the CPU seconds of each
and the process's peak RSS. Linear: both take about the same time per byte, whatever the size.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driver.execution.relay import Relay

CHUNK = 256 * 1024


def cpu_of(mib: int, newlines: bool, log_dir: Path) -> float:
    chunk = (b"x" * 99 + b"\n") * (CHUNK // 100) if newlines else b"x" * CHUNK
    chunk = chunk[:CHUNK].ljust(CHUNK, b"x")
    relay = Relay(lambda line: None, log_dir)
    start = time.process_time()
    offset = 0
    for _ in range(mib * (1 << 20) // CHUNK):
        relay.feed("h", offset, chunk)
        offset += CHUNK
    relay.finish()
    return time.process_time() - start


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [16, 32, 64]
    with tempfile.TemporaryDirectory() as tmp:
        for mib in sizes:
            flat = cpu_of(mib, False, Path(tmp))
            lines = cpu_of(mib, True, Path(tmp))
            print(f"{mib} MiB: without a newline {flat:.2f} s CPU, in 100-byte lines {lines:.2f} s CPU")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
