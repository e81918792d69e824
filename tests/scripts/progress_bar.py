"""progress_bar.py N MARKER: a progress bar as tqdm draws it ("\\rstep i" for i in 1..N, no newline), then
wait (at most 60 s) until the file MARKER exists, then end the bar with "\\n" and print 'done'."""

import os
import sys
import time

n, marker = int(sys.argv[1]), sys.argv[2]
for i in range(1, n + 1):
    sys.stdout.write(f"\rstep {i}")
    sys.stdout.flush()
    time.sleep(0.05)
deadline = time.time() + 60
while not os.path.exists(marker):
    if time.time() > deadline:
        print("\nmarker never came")
        sys.exit(9)
    time.sleep(0.05)
print("\ndone", flush=True)
