"""fills_disk.py MODE: write outputs/model.txt, then fill the disk with outputs/fill.bin until it is full.

MODE `raise`: the OSError (ENOSPC) ends the script (exit 1); `catch`: it is caught and the script exits 0.
"""

import contextlib
import sys

print("writing the model", flush=True)
with open("outputs/model.txt", "w") as f:
    f.write("model\n")
try:
    with open("outputs/fill.bin", "wb") as f:
        while True:
            f.write(b"\0" * (1 << 20))
            f.flush()
except OSError as exc:
    if sys.argv[1] == "raise":
        raise
    with contextlib.suppress(OSError):  # the log is on the same full disk
        print(f"disk full: {exc}", flush=True)
