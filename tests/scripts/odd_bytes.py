"""odd_bytes.py: write PIECES, each to its fd (1 or 2) as it is: bytes that are not UTF-8, stdout and
stderr interleaved (also within a line), a progress bar's "\\r", and last a 5 MB line without a newline.
The tests import PIECES to know the exact bytes the job's log must hold."""

import os

LONG = bytes(b for b in range(256) if b not in b"\r\n") * (5_000_000 // 254)
PIECES = [
    (1, b"utf-8 caf\xc3\xa9\n"),
    (1, b"latin-1 caf\xe9, bare bytes \xff\xfe\x80, a cut sequence \xe2\x82\n"),
    (2, b"stderr 1\n"),
    (1, b"stdout 2 then "),
    (2, b"stderr 2 within the line\n"),
    (1, b"\r10%\r50%\r100%\n"),
    (2, b"\xc3"),
    (1, b"\xa9 split across the streams\n"),
    (1, LONG[: len(LONG) // 2]),
    (1, LONG[len(LONG) // 2 :]),
]

if __name__ == "__main__":
    for fd, data in PIECES:
        while data:
            data = data[os.write(fd, data) :]
