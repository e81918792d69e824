"""writes_outputs.py TAG MODE: write outputs/TAG.txt, then exit 0, exit 4, or sleep (for timeout/cancel)."""

import sys
import time

tag, mode = sys.argv[1], sys.argv[2]
with open(f"outputs/{tag}.txt", "w") as f:
    f.write(tag + "\n")
print(f"wrote {tag}", flush=True)
if mode == "fail":
    sys.exit(4)
if mode == "sleep":
    time.sleep(600)
