"""hostile_output.py LONGHOST SIZE SECONDS: what a hostile host's job prints (issue 28).

On the host named LONGHOST: SIZE bytes without a newline (PATTERN repeated, written 1 MiB at a time), then
nothing more. On any other host: `tick N` every 0.1 s for SECONDS seconds.
"""

import socket
import sys
import time

# ASCII and two multi-byte UTF-8 characters: a cut that split one would show.
PATTERN = ("abcdefghij" * 10 + "é€").encode()


def long_line(size: int):
    """The bytes of the line, 1 MiB at a time (the tests rebuild them the same way)."""
    block = PATTERN * ((1 << 20) // len(PATTERN) + 1)
    while size > 0:
        piece = block[: min(size, 1 << 20)]
        yield piece
        size -= len(piece)
        block = block[len(piece) % len(PATTERN) :] + block[: len(piece) % len(PATTERN)]


if __name__ == "__main__":
    host, size, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if socket.gethostname() == host:
        for piece in long_line(size):
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()
    else:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            print(f"tick {n}", flush=True)
            n += 1
            time.sleep(0.1)
